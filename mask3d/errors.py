"""Errors users see. Each message is one line that says what went wrong and what to do."""


class Mask3DError(Exception):
    """Base class of every error mask3d raises on purpose.

    Raised inside a DataLoader worker, it reaches the main process re-created by torch from one long string
    ("Caught X in DataLoader worker process 0. Original Traceback ...", torch/_utils.py ExceptionWrapper). The
    constructor recognises that string and keeps only the original one-line message as ``str(e)``; the worker's
    traceback stays in ``e.worker_traceback`` (shown by ``mask3d --debug``).
    """

    worker_traceback = None

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith('Caught ') \
                and '\nOriginal Traceback' in args[0]:
            message = _original_message(args[0], type(self))
            if message is not None:
                self.worker_traceback = args[0]
                args = (message,)
        super().__init__(*args)


def _original_message(wrapped: str, cls: type):
    """The message of the exception at the end of a formatted traceback (``module.Class: message``)."""
    name = cls.__qualname__ if cls.__module__ == 'builtins' else f'{cls.__module__}.{cls.__qualname__}'
    at = wrapped.rfind(f'\n{name}: ')
    return wrapped[at + len(name) + 3:].rstrip('\n') if at >= 0 else None


class UnknownModelError(Mask3DError, RuntimeError):
    """A model name (or its pretrained tag) is not registered."""


class WeightsNotPublishedError(Mask3DError, RuntimeError):
    """``pretrained=True`` asked for weights that are not on the Hub yet."""


class WeightsNotCachedError(Mask3DError, OSError):
    """Weights must be downloaded, but the Hub cannot be reached (offline) and they are not cached."""


class WeightsDownloadError(Mask3DError, OSError):
    """The Hub answered, but the repository, revision or file does not exist or cannot be read."""


class CheckpointMismatchError(Mask3DError, RuntimeError):
    """A checkpoint's keys or shapes do not fit the model."""


class CheckpointWriteError(Mask3DError, OSError):
    """A checkpoint could not be written (disk full, file-size limit, I/O error); the previous one is kept."""


class InvalidWeightsFileError(Mask3DError, ValueError):
    """A weights file is missing, not valid safetensors, or a pickle we refuse to load."""


class ConfigError(Mask3DError, ValueError):
    """A training configuration value is unknown or out of range."""


class DataError(Mask3DError, ValueError):
    """A dataset file or folder is missing, unreadable or not what its reader expects (the message names it)."""


RGBDFolderError = DataError
"""The name every dataset error had before the hierarchy below; ``except RGBDFolderError`` still catches them all."""


class MissingDataError(DataError):
    """A file or folder a dataset needs is not there."""


class BadDataFileError(DataError):
    """A dataset file is there but cannot be read, or is not in the format its reader expects."""


class LabelRangeError(DataError):
    """A label image holds class ids outside the dataset's classes."""


class NonFiniteLossError(Mask3DError, FloatingPointError):
    """A training loss became NaN or infinite (checked at log and checkpoint steps, before anything is saved)."""


class NonFiniteTensorError(Mask3DError, FloatingPointError):
    """A tensor about to be written (checkpoint, export, ``save_pretrained``, push) holds NaN or inf; nothing was
    written (:func:`mask3d.finite.check_finite_tensors`)."""


class RunFolderError(Mask3DError, RuntimeError):
    """A folder mask3d may not use as a run folder: the working directory or above, one it did not make (for
    ``--overwrite``), or one another live run holds (docs/troubleshooting.md, "Run folders")."""
