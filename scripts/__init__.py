"""
scripts/: entry points that are not the method. They read finished runs and turn them into the
result files under results/; nothing in training or evaluation imports them.

    report.py       tables with standard errors and paired bootstrap intervals; ablation plots
    adapter_map.py  the paper's figure 5: 2-D maps of task embeddings and of generated adapters

Run them as modules from the repository root, so that they import the project's files:

    python -m scripts.report table RUN_DIR --out PREFIX
    python -m scripts.adapter_map T2L_CKPT --out PREFIX
"""
