"""The embedding model's PyTorch forward pass, loaded with as little around it as the folder allows.

A sentence-transformers folder (modules.json) of a plain Transformer + mean Pooling (+ Normalize)
is all most embedding models are. For a BERT of that shape the forward pass is written here (about
sixty lines over the folder's safetensors weights and tokenizer.json), so a build imports PyTorch,
safetensors and tokenizers only: importing sentence-transformers costs about 0.44 GB resident (it
pulls scikit-learn, SciPy, pandas, accelerate and torchvision) and transformers' BertModel about
0.23 GB (SciPy, accelerate and torchvision again, through its loss and loading modules), measured
with /proc/self/status on this machine (README "Speed"). Another architecture of that shape runs
through transformers' AutoModel; anything else (another pooling, a Dense layer, prompts, lowercasing
by sentence-transformers) through SentenceTransformer itself. Each says so in the log.

Every kind answers the same calls: tokenize (ids and character offsets, cut at max_seq_length),
count_tokens, __call__(features) -> {"token_embeddings", "sentence_embedding"} (as a
SentenceTransformer's forward), and exportable() for the ONNX export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

# The activations the hand-written BERT knows (config.json hidden_act).
_ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh"}


class NotPlain(Exception):
    """The folder is not a plain Transformer + mean Pooling (+ Normalize) model; the message says why."""


def load(path: str, device: str = "cpu"):
    """The model in folder `path` as a LeanModel when it is plain enough, else a SentenceTransformerModel."""
    try:
        max_seq_length = plain_facts(Path(path))
    except NotPlain as e:
        log.info("loading %s through sentence-transformers: %s", path, e)
        return SentenceTransformerModel(path, device)
    return LeanModel(Path(path), max_seq_length, device)


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _is_mean(config: dict) -> bool:
    # sentence-transformers 6 writes pooling_mode="mean"; earlier versions pooling_mode_mean_tokens=true.
    modes = config.get("pooling_mode")
    modes = [modes] if isinstance(modes, str) else list(modes or [])
    if modes:
        return modes == ["mean"]
    return [k for k, v in config.items() if k.startswith("pooling_mode_") and v] == ["pooling_mode_mean_tokens"]


def plain_facts(root: Path) -> int:
    """max_seq_length of a plain Transformer + mean Pooling (+ Normalize) folder; NotPlain otherwise.

    The sequence length is read as sentence-transformers reads it: sentence_bert_config.json's
    max_seq_length, else the tokenizer's model_max_length (capped by the position embeddings).
    """
    modules = _read(root / "modules.json")
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if not (kinds[:2] == ["Transformer", "Pooling"] and all(k == "Normalize" for k in kinds[2:])):
        raise NotPlain(f"modules {kinds or 'missing'}")
    if modules[0].get("path", "") != "":
        raise NotPlain("the transformer is not at the folder's root")
    if not _is_mean(_read(root / modules[1]["path"] / "config.json")):
        raise NotPlain("the pooling is not the mean of the tokens")
    st_config = _read(root / "sentence_bert_config.json")
    if st_config.get("do_lower_case"):
        raise NotPlain("sentence-transformers lowercases its input")
    out = st_config.get("modality_config", {}).get("text", {}).get("method_output_name", "last_hidden_state")
    if out != "last_hidden_state":
        raise NotPlain(f"the transformer's output is {out!r}")
    if _read(root / "config_sentence_transformers.json").get("default_prompt_name"):
        raise NotPlain("a default prompt")
    if not (root / "tokenizer.json").exists():
        raise NotPlain("no tokenizer.json")
    config = _read(root / "config.json")
    length = st_config.get("max_seq_length") or _read(root / "tokenizer_config.json").get("model_max_length")
    positions = config.get("max_position_embeddings")
    if not length or length > 1_000_000:  # transformers' "no limit" is a huge integer
        length = positions
    if not length:
        raise NotPlain("no maximum sequence length")
    return int(min(length, positions or length))


class LeanModel:
    """A plain Transformer + mean Pooling model: our BERT, or transformers' AutoModel for another architecture."""

    def __init__(self, root: Path, max_seq_length: int, device: str = "cpu") -> None:
        from tokenizers import Tokenizer

        self.max_seq_length = max_seq_length
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length)
        self._counter = Tokenizer.from_file(str(root / "tokenizer.json"))  # untruncated, for count_tokens
        self._counter.no_padding()
        self._counter.no_truncation()
        config = _read(root / "config.json")
        try:
            self.transformer = _bert(root, config)
            self.kind = "bert"
        except NotPlain as e:
            log.info("loading %s through transformers' AutoModel: %s", root, e)
            self.transformer = _auto(root)
            self.kind = "auto"
        self.transformer.to(device).eval()
        self.device = device
        self.dim = int(config["hidden_size"])
        self.input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if config.get("type_vocab_size", 0) else [])

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        """Each text's token ids ([CLS] and [SEP] included, cut at max_seq_length) and character offsets."""
        encodings = self.tokenizer.encode_batch(list(texts))
        return [e.ids for e in encodings], [e.offsets for e in encodings]

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def __call__(self, features: dict) -> dict:
        mask = features["attention_mask"]
        tokens = self.transformer(features["input_ids"], mask, features.get("token_type_ids"))
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        # sentence-transformers' mean pooling: the sum over real tokens over their count (at least 1e-9).
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return {"token_embeddings": tokens, "sentence_embedding": pooled}

    def exportable(self):
        """A module (input ids, attention mask[, token type ids]) -> last hidden state, for the ONNX export."""
        return self.transformer


class SentenceTransformerModel:
    """Any other sentence-transformers model, through SentenceTransformer (imports its whole stack)."""

    kind = "sentence-transformers"

    def __init__(self, path: str, device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        # float32 whatever the stored weights (the tuned model ships as float16 to halve its size).
        self.st = SentenceTransformer(path, device=device, model_kwargs={"dtype": torch.float32})
        dim_of = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.max_seq_length = int(self.st.max_seq_length)
        self.hf_tokenizer = self.st.tokenizer
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                            if n in self.hf_tokenizer.model_input_names]

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        enc = self.hf_tokenizer(list(texts), truncation=True, max_length=self.max_seq_length,
                                return_offsets_mapping=True, return_attention_mask=False,
                                return_token_type_ids=False)
        return enc["input_ids"], enc["offset_mapping"]

    def count_tokens(self, text: str) -> int:
        return len(self.hf_tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def __call__(self, features: dict) -> dict:
        return self.st(features)

    def exportable(self):
        from sentence_transformers.models import Normalize, Pooling, Transformer

        modules = list(self.st)
        if not (len(modules) in (2, 3) and isinstance(modules[0], Transformer) and isinstance(modules[1], Pooling)
                and _is_mean(modules[1].get_config_dict()) and all(isinstance(m, Normalize) for m in modules[2:])):
            raise NotPlain(f"only Transformer + mean Pooling models are exported, not {[type(m).__name__ for m in modules]}")
        return _hidden_states(modules[0].auto_model)


def _auto(root: Path):
    import torch
    from transformers import AutoModel

    return _hidden_states(AutoModel.from_pretrained(str(root), dtype=torch.float32))


def _hidden_states(auto):
    """A transformers model as a module returning its last hidden state (what mean pooling reads)."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return self.auto(**kw).last_hidden_state

    return Hidden()


def _bert(root: Path, config: dict):
    """Our BERT encoder over the folder's model.safetensors, in float32; NotPlain if it is not one we know."""
    if config.get("model_type") != "bert":
        raise NotPlain(f"model_type {config.get('model_type')!r}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise NotPlain(f"position embeddings {config['position_embedding_type']!r}")
    if config.get("hidden_act") not in _ACTIVATIONS:
        raise NotPlain(f"activation {config.get('hidden_act')!r}")
    weights = root / "model.safetensors"
    if not weights.exists():
        raise NotPlain("no model.safetensors")
    from safetensors.torch import load_file

    state = load_file(str(weights))
    if any(k.startswith("bert.") for k in state):
        state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    state = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
             for k, v in state.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
    model = _Bert(config)
    try:
        # load_state_dict copies into the float32 parameters: float16 weights (the tuned model's) are widened.
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise NotPlain(f"weights do not fit a BERT ({str(e)[:200]})") from e
    return model


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Embeddings(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
            self.token_type_embeddings = nn.Embedding(max(1, c.get("type_vocab_size", 2)), c["hidden_size"])
            self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))

        def forward(self, input_ids, token_type_ids):
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
            x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
            return self.LayerNorm(x + self.token_type_embeddings(token_type_ids))

    class Dense(nn.Module):  # HF's BertSelfOutput / BertOutput: dense, then LayerNorm over the residual
        def __init__(self, n_in: int, n_out: int, eps: float) -> None:
            super().__init__()
            self.dense = nn.Linear(n_in, n_out)
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

        def forward(self, x, residual):
            return self.LayerNorm(self.dense(x) + residual)

    class Layer(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            h, eps = c["hidden_size"], c.get("layer_norm_eps", 1e-12)
            self.heads = c["num_attention_heads"]
            self.approximate = _ACTIVATIONS[c["hidden_act"]]
            self.attention = nn.ModuleDict({
                "self": nn.ModuleDict({"query": nn.Linear(h, h), "key": nn.Linear(h, h), "value": nn.Linear(h, h)}),
                "output": Dense(h, h, eps)})
            self.intermediate = nn.ModuleDict({"dense": nn.Linear(h, c["intermediate_size"])})
            self.output = Dense(c["intermediate_size"], h, eps)

        def forward(self, x, keep):
            b, n, h = x.shape
            qkv = self.attention["self"]
            q, k, v = (qkv[name](x).view(b, n, self.heads, h // self.heads).transpose(1, 2)
                       for name in ("query", "key", "value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, n, h)
            x = self.attention["output"](context, x)
            inner = F.gelu(self.intermediate["dense"](x), approximate=self.approximate)
            return self.output(inner, x)

    class Bert(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.embeddings = Embeddings(c)
            self.encoder = nn.ModuleDict({"layer": nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))})

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            # Padding keys are masked out of every query's attention (bool mask: True attends).
            keep = attention_mask.bool()[:, None, None, :]
            x = self.embeddings(input_ids, token_type_ids)
            for layer in self.encoder["layer"]:
                x = layer(x, keep)
            return x

    return Bert


def _Bert(config: dict):
    return _modules()(config)
