using System.Net.Sockets;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Present in HttpContext.Features when the zero-copy transport serves this connection
/// (plaintext HTTP/1.x socket connection). The forwarder uses it to move an upstream body
/// upstream socket → pipe → client socket with splice(2), never through user space.
/// </summary>
public interface IZeroCopyResponseFeature
{
    /// <summary>False when this response cannot take a hole (HTTP/2, TLS, chunked, writer faulted, ...).</summary>
    bool CanSplice { get; }

    /// <summary>
    /// Starts the response (status and headers must be set, with Content-Length = <paramref name="length"/>)
    /// and sends exactly <paramref name="length"/> body bytes read from <paramref name="source"/>.
    /// Counts the bytes as mechanism="splice". If the source ends early or fails, the client connection
    /// is aborted (a truncated body is never passed off as complete) and the exception propagates.
    /// </summary>
    Task SpliceFromSocketAsync(Socket source, long length, CancellationToken cancellationToken);
}
