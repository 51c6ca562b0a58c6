"""One error hierarchy: dataset errors say what happened, and the old name still catches them all."""
import pytest

import mask3d
from mask3d.errors import BadDataFileError, DataError, LabelRangeError, MissingDataError, RGBDFolderError
from mask3d.training.data.inspect import detect_format
from mask3d.training.data.scannet_sens import SensReader, SensFormatError


def test_data_errors_share_one_base_the_old_name_catches():
    assert RGBDFolderError is DataError and issubclass(DataError, mask3d.Mask3DError)
    for cls in (MissingDataError, BadDataFileError, LabelRangeError, SensFormatError):
        assert issubclass(cls, DataError) and issubclass(cls, ValueError)
    assert issubclass(SensFormatError, BadDataFileError)


def test_readers_raise_the_error_that_says_what_happened(tmp_path):
    with pytest.raises(MissingDataError, match='nowhere: no such file or folder'):
        detect_format(tmp_path / 'nowhere')
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(BadDataFileError, match='notes.txt: cannot tell the format'):
        detect_format(tmp_path / 'notes.txt')
    (tmp_path / 'short.sens').write_bytes(b'\x04\x00')
    with pytest.raises(SensFormatError, match='short.sens: truncated'):
        SensReader(tmp_path / 'short.sens')
