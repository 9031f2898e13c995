"""LangChain tools the agents call: one thin tool per capability."""
