"""The one error type raised for anything wrong with an `.inr` file."""


class InrFormatError(ValueError):
    """A file is not a valid `.inr` file: bad magic, version, field, length or checksum.

    The message names the problem (for example ``"header field 'width' = 0 is out of range 1..65535"``).
    """
