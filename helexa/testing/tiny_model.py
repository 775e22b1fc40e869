"""An offline, deterministic tiny Qwen3 model for tests, benchmarks and the demo.

`build(out_dir, size)` writes a directory that `AutoModelForCausalLM` and
`AutoTokenizer` load like any Hugging Face checkpoint: random weights as
safetensors, a byte-level BPE tokenizer trained on a corpus generated here,
Qwen3's special/added tokens and a Qwen3-style chat template. Nothing is
downloaded; rebuilding gives byte-identical files (fixed seeds, sorted JSON,
no timestamps).

    python -m helexa.testing.tiny_model DIR [--size tiny|small|medium]

`with_sliding_window(model_dir, out_dir)` copies a built model with every
layer a sliding-window layer (how Gemma, Mistral-family and gpt-oss models
have some of theirs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Qwen3's control tokens. The first three are "special" (skip_special_tokens drops
# them); the tag tokens are plain added tokens so decoded text keeps them and the
# output parser can see <think> and <tool_call>.
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
TAG_TOKENS = ("<think>", "</think>", "<tool_call>", "</tool_call>")

# Qwen2/3's pre-tokenizer split: contractions, letter runs, single digits,
# punctuation runs, newlines, whitespace.
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SEED = 1234


@dataclass(frozen=True)
class ModelSize:
    vocab_size: int  # BPE target, before the added tokens
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    corpus_lines: int
    dtype: str


SIZES: dict[str, ModelSize] = {
    # ~1M parameters: loads in milliseconds, used by the test suite.
    "tiny": ModelSize(4096, 128, 512, 2, 4, 2, 32, 4096, 6000, "float32"),
    # ~28M parameters: big enough that batching and GPU work show in benchmarks.
    # float32 like tiny: on CPU bfloat16 decodes ~3x slower (dtype="bfloat16" on a GPU).
    "small": ModelSize(8192, 512, 1408, 8, 8, 4, 64, 8192, 12000, "float32"),
    # ~290M parameters in bfloat16: the GPU check's model (real-size layers, quick to build).
    "medium": ModelSize(8192, 1024, 2816, 24, 16, 8, 64, 8192, 12000, "bfloat16"),
}


def build(out_dir: Path, size: str = "tiny") -> Path:
    """Build the model into `out_dir` (replaced atomically) and return it."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
    spec = SIZES[size]
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename, so a concurrent reader (another
    # pytest worker, `make`) never sees a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tokenizer_ids = _write_tokenizer(staging, spec)
        _write_model(staging, spec, tokenizer_ids)
        _make_readable(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        try:
            os.replace(staging, out_dir)
        except OSError:
            # A concurrent build won the race; builds are identical, so keep theirs.
            if not (out_dir / "config.json").exists():
                raise
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


@dataclass(frozen=True)
class _TokenizerIds:
    vocab_size: int  # every id the tokenizer can produce, added tokens included
    endoftext: int
    im_end: int


def _write_tokenizer(out: Path, spec: ModelSize) -> _TokenizerIds:
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, processors, trainers
    from tokenizers import decoders as dec
    from tokenizers import pre_tokenizers as pre

    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre.Sequence(
        [
            pre.Split(Regex(_QWEN_SPLIT), behavior="isolated", invert=False),
            pre.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = dec.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(corpus_lines(SEED, spec.corpus_lines), trainer=trainer)
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    (out / "tokenizer.json").write_text(tokenizer.to_str(pretty=True), encoding="utf-8")

    added: dict[str, Any] = {}
    for token in (*SPECIAL_TOKENS, *TAG_TOKENS):
        token_id = tokenizer.token_to_id(token)
        added[str(token_id)] = {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": token in SPECIAL_TOKENS,
        }
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": spec.max_position_embeddings,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    _write_json(out / "tokenizer_config.json", config)
    _write_json(
        out / "special_tokens_map.json",
        {
            "additional_special_tokens": [IM_START, IM_END],
            "eos_token": IM_END,
            "pad_token": ENDOFTEXT,
        },
    )
    endoftext = tokenizer.token_to_id(ENDOFTEXT)
    im_end = tokenizer.token_to_id(IM_END)
    assert endoftext is not None and im_end is not None
    return _TokenizerIds(tokenizer.get_vocab_size(with_added_tokens=True), endoftext, im_end)


def _write_model(out: Path, spec: ModelSize, ids: _TokenizerIds) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    # Pad the embedding past the tokenizer like real checkpoints do (Qwen3: 151936 rows
    # for 151669 tokens); the spare ids decode to nothing.
    vocab_size = -(-ids.vocab_size // 64) * 64
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        max_window_layers=spec.num_hidden_layers,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=ids.im_end,
        pad_token_id=ids.endoftext,
        dtype=spec.dtype,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(SEED)
        model = Qwen3ForCausalLM(config).to(getattr(torch, spec.dtype))
    model.save_pretrained(out, safe_serialization=True)
    generation = {
        "bos_token_id": None,
        "do_sample": True,
        "eos_token_id": [ids.im_end, ids.endoftext],
        "pad_token_id": ids.endoftext,
        "temperature": 0.7,
        "top_p": 0.8,
    }
    # Our own file, not GenerationConfig.save_pretrained, so nothing version-stamped
    # creeps in beyond config.json's transformers_version.
    _write_json(out / "generation_config.json", generation)


# ---- the training corpus: generated, so the build needs no data files ----

_COMMON_TEXT = """
the a an and or but if then else when while for to of in on at by with from as is are was were
be been has have had do does did not no yes this that these those it its they we you he she i
me my your our their what which who how why where all any some each model token tokens request
response server client gateway neuron fleet host load unload memory device queue stream chunk
error status value key name list item file path config data time second minute hello world
weather city today tomorrow temperature forecast search result query answer question think
reason because first next last number count user assistant system tool function call arguments
content message return print import class def self none true false null string int float bool
"""
_COMMON_WORDS = _COMMON_TEXT.split()
_WORLD_WORDS = ("héllo", "café", "naïve", "größe", "世界", "你好", "日本語", "привет", "🙂", "🚀")
_KEYS = ("name", "arguments", "city", "unit", "query", "id", "count", "value", "items", "path")
_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "st",
    "tr",
)
_VOWELS = ("a", "e", "i", "o", "u", "ea", "ou", "io")
_CODAS = ("", "", "n", "r", "s", "t", "l", "nd", "ng", "st")
_CODE = (
    "def {a}({b}):\n    return {b} + {n}\n",
    "for {a} in range({n}):\n    print({a}, {b})\n",
    'if {a} is None:\n    raise ValueError("{b}")\n',
    "class {A}:\n    def __init__(self, {a}: int) -> None:\n        self.{a} = {a}\n",
    'const {a} = await fetch("/v1/{b}");\n',
    "{a} = [{n}, {m}, {n}]  # {b}\n",
)


def corpus_lines(seed: int, count: int) -> list[str]:
    """Deterministic English-ish prose, code, JSON, numbers and chat-format text."""
    rng = random.Random(seed)
    # Pseudo-words give BPE enough distinct pairs to fill a few thousand merges.
    lexicon = sorted({_pseudo_word(rng) for _ in range(count // 2)}) + _COMMON_WORDS * 8
    makers = (_prose, _code, _json, _numbers, _chat)
    return [makers[i % len(makers)](rng, lexicon) for i in range(count)]


def _pseudo_word(rng: random.Random) -> str:
    syllables = rng.randint(1, 4)
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    )


def _prose(rng: random.Random, lexicon: list[str]) -> str:
    words = [rng.choice(lexicon) for _ in range(rng.randint(4, 18))]
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), rng.choice(_WORLD_WORDS))
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + rng.choice((".", "?", "!", ",", ":"))


def _code(rng: random.Random, lexicon: list[str]) -> str:
    a, b = rng.choice(lexicon), rng.choice(lexicon)
    numbers = {"n": rng.randint(0, 999), "m": rng.randint(0, 99)}
    return rng.choice(_CODE).format(a=a, b=b, A=a.capitalize(), **numbers)


def _json(rng: random.Random, lexicon: list[str]) -> str:
    choices = (rng.choice(lexicon), rng.randint(-50, 5000), True, None)
    args = {rng.choice(_KEYS): rng.choice(choices) for _ in range(rng.randint(1, 4))}
    return json.dumps({"name": rng.choice(lexicon), "arguments": args}, ensure_ascii=False)


def _numbers(rng: random.Random, lexicon: list[str]) -> str:
    del lexicon  # same signature as the other makers
    return " ".join(str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(rng.randint(2, 8)))


def _chat(rng: random.Random, lexicon: list[str]) -> str:
    role = rng.choice(("system", "user", "assistant", "tool"))
    body = _prose(rng, lexicon)
    if role == "assistant" and rng.random() < 0.5:
        body = f"<think>\n{_prose(rng, lexicon)}\n</think>\n\n{body}"
    elif role == "assistant":
        body = f"<tool_call>\n{_json(rng, lexicon)}\n</tool_call>"
    return f"<|im_start|>{role}\n{body}<|im_end|>\n"


def _make_readable(directory: Path) -> None:
    # mkdtemp and the safetensors writer create owner-only files; a model dir
    # is shared (the neuron may run as another user), so open it up like `cp` would.
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)


def with_sliding_window(model_dir: Path, out_dir: Path, window: int = 8) -> Path:
    """A copy of `model_dir` whose layers all attend over a sliding window of `window`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in model_dir.iterdir():
        if source.is_file():
            shutil.copy(source, out_dir / source.name)
    config = json.loads((out_dir / "config.json").read_text())
    layers = int(config["num_hidden_layers"])
    config |= {"layer_types": ["sliding_attention"] * layers, "use_sliding_window": True}
    config |= {"sliding_window": window, "max_window_layers": 0}
    _write_json(out_dir / "config.json", config)
    return out_dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    args = parser.parse_args(argv)
    print(build(args.out_dir, args.size))


# Qwen3's chat template, simplified: content may be a string or a list of text
# parts; tools go into the system turn; tool results become <tool_response>
# blocks in a user turn; enable_thinking=false pre-closes an empty think block.
CHAT_TEMPLATE = r"""
{%- macro text_of(content) -%}
{%- if content is string -%}{{- content -}}
{%- elif content is iterable and content is not mapping -%}
{%- for part in content -%}{%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}{{- text_of(messages[0].content) + '\n\n' }}{%- endif %}
{{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
{{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\n' + text_of(messages[0].content) + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1, searching=true) %}
{%- for message in messages[::-1] %}
{%- set index = (messages|length - 1) - loop.index0 %}
{%- if ns.searching and message.role == 'user' %}
{%- set ns.searching = false %}
{%- set ns.last_query_index = index %}
{%- endif %}
{%- endfor %}
{%- for message in messages %}
{%- set content = text_of(message.content) %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
{{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}
{%- elif message.role == 'assistant' %}
{%- set reasoning = '' %}
{%- if message.reasoning_content is string %}
{%- set reasoning = message.reasoning_content %}
{%- elif '</think>' in content %}
{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
{%- set content = content.split('</think>')[-1].lstrip('\n') %}
{%- endif %}
{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) %}
{{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
{%- else %}
{{- '<|im_start|>assistant\n' + content }}
{%- endif %}
{%- for tool_call in message.tool_calls or [] %}
{%- if (loop.first and content) or not loop.first %}{{- '\n' }}{%- endif %}
{%- set call = tool_call.function if tool_call.function else tool_call %}
{{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}
{%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}
{{- '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' + content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}
""".strip()  # noqa: E501


if __name__ == "__main__":
    main()
