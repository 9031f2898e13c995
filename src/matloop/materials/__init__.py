"""Domain core with no LLM in it: structures, prototypes, MLIPs, references, hull."""
