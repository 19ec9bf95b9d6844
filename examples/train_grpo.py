"""Train a policy with GRPO on rlvr rewards: TRL's `GRPOTrainer`, scored by a running rlvr service.

Start a service (``make run``), then, after ``pip install torch`` and ``pip install 'rlvr[trl]'`` (and vllm on a
GPU machine)::

    python examples/train_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --url http://127.0.0.1:8000 --components
    python examples/train_grpo.py --model tiny --max-steps 2 --max-completion-length 16   # a CPU smoke run

The dataset is JSONL, one ``{"prompt": "What is 2 + 3?", "answer": 5}`` per line (default: the sample in
``examples/data``). Every completion is scored by the service with a profile (default ``r1-math``: the math
answer against the row's ``answer``, the R1 ``<think>/<answer>`` format, language consistency). ``--components``
gives TRL one reward function per component, weighted as the server's profile weighs them, so the total is the
service's reward and TRL logs each component (``rewards/rlvr_math/mean``, ...) next to rlvr's own metrics
(``rlvr/math/mean``, ``rlvr/masked_frac``, ``rlvr/no_signal_frac``).

``--model tiny`` builds a tiny randomly initialised model and a tokenizer trained on the dataset, so nothing is
downloaded (run it with ``HF_HUB_OFFLINE=1``); its rewards are noise, it only shows the loop works. With a GPU
and vllm installed, generation runs in vLLM colocated with training; otherwise everything runs on the CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer

from rlvr import RewardClient
from rlvr.trl import RewardFunction

SAMPLE_DATASET = Path(__file__).parent / "data" / "arith.jsonl"

# In the user turn, not a system prompt: rlvr sees the last prompt message, and the language checker detects
# the target language from it (a bare "What is 2 + 3?" is too short to detect).
INSTRUCTION = (
    "Think it through step by step inside <think> </think> tags, "
    "then write only the final answer inside <answer> </answer> tags."
)

# The tiny model's chat template: role markers, and the generation prompt opens the assistant turn.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="local path or hub id of a causal LM; 'tiny' builds one")
    parser.add_argument("--dataset", type=Path, default=SAMPLE_DATASET, help="JSONL rows {prompt, answer}")
    parser.add_argument(
        "--url",
        action="append",
        help="rlvr service URL; repeat it or separate with commas for replicas (default: $RLVR_URL)",
    )
    parser.add_argument("--profile", default="r1-math", help="the server's reward profile (GET /v1/profiles)")
    parser.add_argument("--components", action="store_true", help="one weighted reward function per component")
    parser.add_argument("--max-steps", type=int, default=200, help="optimizer steps")
    parser.add_argument("--num-generations", type=int, default=8, help="completions per prompt (the GRPO group)")
    parser.add_argument(
        "--per-device-train-batch-size", type=int, default=8, help="completions per micro-batch and device"
    )
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--max-completion-length", type=int, default=512, help="tokens per completion")
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/grpo"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def service_urls(values: Sequence[str] | None) -> list[str] | None:
    """``--url a --url b,c`` -> [a, b, c]; None lets the SDK read $RLVR_URL."""
    urls = [url.strip() for value in values or [] for url in value.split(",") if url.strip()]
    return urls or None


def read_rows(path: Path) -> list[dict[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                # Answers may be numbers or LaTeX strings; one type keeps the Arrow column consistent.
                rows.append({"prompt": str(row["prompt"]), "answer": str(row["answer"])})
    return rows


def make_dataset(rows: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase) -> Dataset:
    """Chat prompts when the tokenizer has a chat template (instruct models), plain text otherwise."""
    if tokenizer.chat_template is not None:
        prompts: list[object] = [[{"role": "user", "content": f"{r['prompt']}\n{INSTRUCTION}"}] for r in rows]
    else:
        prompts = [f"{r['prompt']}\n{INSTRUCTION}\n" for r in rows]
    return Dataset.from_dict({"prompt": prompts, "answer": [r["answer"] for r in rows]})


def build_tiny_model(rows: list[dict[str, str]], directory: Path, seed: int) -> Path:
    """A 2-layer random Llama and a byte-level BPE tokenizer trained on the dataset, saved under ``directory``.

    Saved rather than kept in memory so the trainer (and vLLM, which loads by path) treat it like any model."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [f"{r['prompt']}\n{INSTRUCTION}\n<think>\n</think>\n<answer>\n{r['answer']}\n</answer>" for r in rows]
    texts.append("0123456789 + - * / = ( ) \\boxed{} \\frac{}{}")
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=TINY_SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text encodes, byte by byte at worst
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|end|>", chat_template=TINY_CHAT_TEMPLATE
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,  # one head of size 64, a size vLLM's attention kernels take (a 4x16 split may not be)
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_rewards(args: argparse.Namespace) -> tuple[list[RewardFunction], list[float] | None]:
    """The reward functions and, with ``--components``, their weights (TRL's ``reward_weights``)."""
    urls = service_urls(args.url)
    # The dataset's "answer" column is the math reference (the SDK would also find it by that name).
    reward = RewardFunction(urls, profile=args.profile, columns={"reference": "answer"})
    if not args.components:
        return [reward], None  # one reward, combined by the service
    functions = reward.components()  # rlvr_math, rlvr_format, ...: one scoring call per batch for all of them
    with RewardClient(urls) as client:
        spec = client.profiles()["profiles"][args.profile]
    # The profile's own weights: TRL's weighted sum then equals the service's reward for the same completion.
    weights = [float((spec[function.component] or {}).get("weight", 1.0)) for function in functions]
    return functions, weights


def make_config(args: argparse.Namespace, reward_weights: list[float] | None) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    use_vllm = on_gpu and importlib.util.find_spec("vllm") is not None
    return GRPOConfig(
        output_dir=str(args.output_dir),
        max_steps=args.max_steps,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate,
        reward_weights=reward_weights,
        seed=args.seed,
        use_vllm=use_vllm,
        vllm_mode="colocate",  # vLLM in this process, sharing the GPU: no `trl vllm-serve` to start
        use_cpu=not on_gpu,
        bf16=on_gpu,  # TRL's default is bf16 everywhere; CPUs train in fp32
        gradient_checkpointing=on_gpu,  # saves GPU memory on real models; only slows a CPU run
        logging_steps=1,
        save_strategy="no",  # the final model and trainer_state.json are saved once, at the end
        report_to="none",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = read_rows(args.dataset)
    if args.model == "tiny":
        model = str(build_tiny_model(rows, args.output_dir / "tiny-init", args.seed))
    else:
        model = args.model
    tokenizer = AutoTokenizer.from_pretrained(model)
    reward_funcs, reward_weights = make_rewards(args)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=make_config(args, reward_weights),
        train_dataset=make_dataset(rows, tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model()
    trainer.save_state()  # trainer_state.json: global_step and the log history (rewards/..., rlvr/...)
    print(f"trained {trainer.state.global_step} steps; model and trainer_state.json in {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
