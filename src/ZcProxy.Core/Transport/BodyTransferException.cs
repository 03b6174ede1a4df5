namespace ZcProxy.Core.Transport;

/// <summary>Why a zero-copy body did not arrive complete at the client. In every case the client connection was aborted.</summary>
internal enum BodyTransferFailure
{
    /// <summary>The source (file or upstream socket) ended before the promised length.</summary>
    SourceEnded,
    /// <summary>The source failed (upstream reset, I/O error).</summary>
    SourceFailed,
    /// <summary>The client connection failed (reset, closed, aborted).</summary>
    ClientFailed,
    /// <summary>Kestrel did not pass the body's placeholder bytes straight through to our writer.</summary>
    GuardTripped,
    /// <summary>The caller's token (or the request's abort) ended the transfer.</summary>
    Canceled,
    /// <summary>The upstream sent no byte for the idle timeout (a stalled source). A client that takes nothing for as long is <see cref="ClientFailed"/>.</summary>
    IdleTimeout,
}

/// <summary>A body moved by sendfile/splice failed part-way; the client connection has been aborted.</summary>
internal sealed class BodyTransferException : IOException
{
    public BodyTransferException(BodyTransferFailure failure, string message, Exception? inner = null) : base(message, inner)
        => Failure = failure;

    public BodyTransferFailure Failure { get; }
}
