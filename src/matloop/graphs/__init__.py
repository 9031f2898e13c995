"""LangGraph graphs: the campaign and the chat assistant."""
