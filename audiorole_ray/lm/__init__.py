"""The ARP-Model's LM: GLM-4-Voice's chat format, training samples, the tiny GLM, the memory plan."""
