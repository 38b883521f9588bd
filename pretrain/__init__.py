"""pretrain: a small PyTorch trainer and checkpoint loader for Llama/Qwen2/Qwen3 causal LMs.

It knows nothing of contracts or the harness; the harness verifies it from the outside.
"""

__version__ = "0.1.0"
