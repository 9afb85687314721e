"""Speech tokens at 12.5 Hz: tokenizer backends, the k-means codebook, the per-shard stage and
the readers the trainers use. See TOKENS.md."""
from audiorole_ray.tokens.base import SAMPLE_RATE, TOKEN_RATE, SpeechTokenizer, expected_tokens
from audiorole_ray.tokens.reader import read_tokenizer_info, read_tokens, tokens_by_key, tokens_uri

__all__ = ["SAMPLE_RATE", "TOKEN_RATE", "SpeechTokenizer", "expected_tokens", "read_tokenizer_info", "read_tokens",
           "tokens_by_key", "tokens_uri"]
