namespace ZcProxy.Core.Upstream;

/// <summary>Why reading a response head failed.</summary>
internal enum UpstreamHeadFailure
{
    /// <summary>The upstream closed or reset the connection; <see cref="UpstreamHeadException.BytesReceived"/> tells whether before any byte.</summary>
    Closed,
    /// <summary>The head broke RFC 9112 or the limits.</summary>
    Malformed,
}

internal sealed class UpstreamHeadException(UpstreamHeadFailure failure, long bytesReceived, string message, Exception? inner = null)
    : IOException(message, inner)
{
    public UpstreamHeadFailure Failure { get; } = failure;
    public long BytesReceived { get; } = bytesReceived;
}
