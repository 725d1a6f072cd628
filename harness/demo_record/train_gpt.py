"""pgolf demo record: the reference implementation (reference_impl/, copied beside this file)
in a tiny configuration that trains and scores in well under a minute on a CPU.

Run from inside this folder, like any record:
    SEED=1337 DATA_PATH=... TOKENIZER_PATH=... VOCAB_SIZE=... \
    torchrun --standalone --nproc_per_node=1 train_gpt.py
The settings below are defaults: a variable already set in the environment wins.
"""
import os

TINY = {
    "NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_MULT": "2",
    "BIGRAM_VOCAB_SIZE": "256", "BIGRAM_DIM": "32", "VE_DIM": "32",
    "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "2048", "GRAD_ACCUM_STEPS": "1",
    "VAL_BATCH_SIZE": "8192", "ITERATIONS": "24", "WARMUP_STEPS": "2", "WARMDOWN_ITERS": "8",
    "VAL_LOSS_EVERY": "8", "TRAIN_LOG_EVERY": "2", "MAX_WALLCLOCK_SECONDS": "600", "COMPILE": "0",
    "EVAL_STRIDE": "64", "EVAL_BATCH_SEQS": "16",
    "TTT_ENABLED": "1", "TTT_CHUNK_TOKENS": "4096", "TTT_EPOCHS": "1", "TTT_BATCH_SEQS": "8",
}
for key, value in TINY.items():
    os.environ.setdefault(key, value)

from reference_impl.train import main  # noqa: E402  (the settings above must be in place first)

if __name__ == "__main__":
    main()
