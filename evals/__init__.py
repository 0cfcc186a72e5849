"""Evaluation harness: retrieval, answers and decision extraction, on our corpus and public benchmarks."""
