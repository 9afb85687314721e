"""Corpus part 2 as plain Python: plan dialogues from linked turns, assemble them after ASR and
filters, write WebDataset shards, and report (SPEC §1 steps 3-9)."""
