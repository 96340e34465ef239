"""Issue 11 item 5 (a user's first hour): reading a downloaded dataset whose files are not there
fails with one line that names the ``XRECO_SOURCE_<NAME>`` variable to set and the ``x-reco fetch``
command that downloads the files. It used to say ``missing file: <movielens-1m files> (set the
source path in config (or $XRECO_SOURCE_MOVIELENS_1M))``, with no way to get the files, and a source
path that does not exist failed inside each reader with a message of its own."""

import pytest

from x_reco.data.errors import MissingFileError, MissingSourceError
from x_reco.data.registry import PARTITIONS, dataset_spec, load_raw

DOWNLOADED = [p for p in PARTITIONS if not dataset_spec(p).generated and not dataset_spec(p).bundled]


def _assert_one_actionable_line(message: str, partition: str) -> None:
    env = dataset_spec(partition).source_env
    assert "\n" not in message
    assert f"x-reco fetch {partition} " in message
    assert f"export {env}=" in message


def test_every_downloaded_dataset_is_covered():
    assert set(DOWNLOADED) == {"movielens-1m", "mind-small", "amazon-kindle"}


@pytest.mark.parametrize("partition", DOWNLOADED)
def test_no_source_names_the_variable_and_the_fetch_command(partition):
    with pytest.raises(MissingSourceError) as caught:
        load_raw(partition)
    _assert_one_actionable_line(str(caught.value), partition)
    assert f"${dataset_spec(partition).source_env} is not set" in str(caught.value)
    assert isinstance(caught.value, MissingFileError)  # callers catching the older class still do
    assert caught.value.env_var == dataset_spec(partition).source_env


@pytest.mark.parametrize("partition", [*DOWNLOADED, "movielens-100k"])
def test_a_source_path_that_does_not_exist_names_it(partition, tmp_path):
    missing = tmp_path / "not-downloaded"
    with pytest.raises(MissingSourceError) as caught:
        load_raw(partition, missing)
    _assert_one_actionable_line(str(caught.value), partition)
    assert f"{missing} does not exist" in str(caught.value)
