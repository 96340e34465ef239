"""Errors raised on bad input; every one names the file and, where known, member, line and field."""

from __future__ import annotations


class XRecoDataError(Exception):
    """Base class of every data-layer error."""


class ChecksumMismatchError(XRecoDataError):
    def __init__(self, path, algorithm: str, expected: str, actual: str):
        self.path, self.algorithm, self.expected, self.actual = str(path), algorithm, expected, actual
        super().__init__(f"{path}: {algorithm} checksum mismatch: expected {expected}, got {actual}")


class CorruptArchiveError(XRecoDataError):
    def __init__(self, path, member: str | None = None, detail: str = ""):
        self.path, self.member = str(path), member
        where = f"{path}" + (f" [{member}]" if member else "")
        super().__init__(f"{where}: corrupt or truncated archive" + (f": {detail}" if detail else ""))


class UnsafeArchiveEntryError(XRecoDataError):
    def __init__(self, path, entry: str, reason: str = ""):
        self.path, self.entry = str(path), entry
        super().__init__(
            f"{path}: unsafe archive entry {entry!r}"
            + (f" ({reason})" if reason else "")
            + "; refusing the whole archive"
        )


class MissingFileError(XRecoDataError):
    def __init__(self, path, member: str | None = None, hint: str = ""):
        self.path, self.member = str(path), member
        what = f"{path}" + (f": member {member!r}" if member else "")
        super().__init__(f"missing file: {what}" + (f" ({hint})" if hint else ""))


class MissingSourceError(MissingFileError):
    """A downloaded dataset read without its files: names the variable to set and the fetch command."""

    def __init__(self, partition: str, env_var: str, source=None):
        self.partition, self.env_var = partition, env_var
        self.path, self.member = (str(source) if source is not None else f"<{partition} files>"), None
        where = f"{source} does not exist" if source is not None else f"${env_var} is not set"
        dest = f"data/sources/{partition}"
        XRecoDataError.__init__(
            self,
            f"no source files for {partition} ({where}): download them with `x-reco fetch {partition} {dest}`,"
            f" then `export {env_var}=$PWD/{dest}`",
        )


class SchemaError(XRecoDataError):
    def __init__(self, file, line: int | None, field: str | None, detail: str):
        self.file, self.line, self.field, self.detail = str(file), line, field, detail
        loc = f"{file}" + (f", line {line}" if line is not None else "")
        loc += f", field {field!r}" if field is not None else ""
        super().__init__(f"{loc}: {detail}")


class EncodingError(XRecoDataError):
    def __init__(self, file, line: int | None, encoding: str, detail: str = ""):
        self.file, self.line, self.encoding = str(file), line, encoding
        loc = f"{file}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{loc}: cannot decode as {encoding}" + (f": {detail}" if detail else ""))
