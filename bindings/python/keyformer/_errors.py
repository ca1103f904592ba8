"""Exceptions for the library's status codes."""

from . import _lib


class KeyformerError(Exception):
    """A libkeyformer call failed.

    Attributes:
        status: the library's status code (an int; see :class:`keyformer.Status`).
        message: the library's explanation (``keyformer_last_error``), or the bindings' own.
        function: the C function that failed, or None for an error the bindings detected.
    """

    status = None

    def __init__(self, message, status=None, function=None):
        if status is not None:
            self.status = status
        self.message = message
        self.function = function
        super().__init__(message)

    def __str__(self):
        if self.function and not self.message.startswith(self.function):
            return "%s: %s" % (self.function, self.message)
        return self.message


class InvalidArgument(KeyformerError):
    """KEYFORMER_ERR_INVALID_ARGUMENT: a bad size, id or out-of-range value."""

    status = _lib.ERR_INVALID_ARGUMENT


class InvalidHandle(KeyformerError):
    """KEYFORMER_ERR_INVALID_HANDLE: an unknown or freed (closed) context."""

    status = _lib.ERR_INVALID_HANDLE


class InvalidAttention(KeyformerError):
    """KEYFORMER_ERR_INVALID_ATTENTION: NaN, +Inf or a probability outside [0, 1]."""

    status = _lib.ERR_INVALID_ATTENTION


class BufferTooSmall(KeyformerError):
    """KEYFORMER_ERR_BUFFER_TOO_SMALL (the bindings retry, so it is not normally seen)."""

    status = _lib.ERR_BUFFER_TOO_SMALL


class InvalidState(KeyformerError):
    """KEYFORMER_ERR_INVALID_STATE: a saved state that is malformed or does not match."""

    status = _lib.ERR_INVALID_STATE


class Unsupported(KeyformerError):
    """KEYFORMER_ERR_UNSUPPORTED: the engine cannot do what is needed."""

    status = _lib.ERR_UNSUPPORTED


class InternalError(KeyformerError):
    """KEYFORMER_ERR_INTERNAL: a bug in the library (a recovered panic)."""

    status = _lib.ERR_INTERNAL


_BY_STATUS = {cls.status: cls for cls in (InvalidArgument, InvalidHandle, InvalidAttention,
                                          BufferTooSmall, InvalidState, Unsupported, InternalError)}


def error_for(status, message, function=None):
    """Returns the exception for a status code (a KeyformerError subclass where one exists)."""
    cls = _BY_STATUS.get(status, KeyformerError)
    return cls(message, status=status, function=function)
