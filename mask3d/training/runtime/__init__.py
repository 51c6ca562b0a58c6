"""The run machinery every training command shares, and which knows no method: how a run starts and resumes
(``launch``), the training loop (``loop``), checkpoints (``checkpoint``), the run folder and its lock
(``run_folder``), torchrun/DDP (``distributed``), mixed precision (``precision``), ``metrics.jsonl`` and TensorBoard
(``metrics_log``) and ``data.skip_bad`` (``skips``).

It imports no method (``pretrain``, ``finetune``, ``probe``) and no data reader: a method hands it a config (any
:class:`~mask3d.training.config.ValidatedConfig`), a step and its batches (tested in tests/test_architecture.py)."""
