"""The application layer: assembling runs, the command line, the LangGraph server module."""
