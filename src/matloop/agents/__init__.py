"""The four agents (scientist, planner, assistant, critic) and the reporter, each with an LLM
policy and an offline policy."""
