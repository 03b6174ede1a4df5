using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Present in HttpContext.Features when the zero-copy transport serves this connection
/// (plaintext HTTP/1.x socket connection). The forwarder uses it to move an upstream body
/// upstream socket → pipe → client socket with splice(2); the cache uses it to send a stored
/// body file → client socket with sendfile(2). Neither passes the bytes through user space.
/// </summary>
internal interface IZeroCopyResponseFeature
{
    /// <summary>False when this response cannot take a hole (HTTP/2, TLS, chunked, writer faulted, response started...).</summary>
    bool CanSplice { get; }

    /// <summary>Same conditions as <see cref="CanSplice"/>, for a file source.</summary>
    bool CanSendFile { get; }

    /// <summary>
    /// Starts the response (status and headers must be set, with Content-Length = <paramref name="length"/>)
    /// and sends exactly <paramref name="length"/> body bytes read from <paramref name="source"/>.
    /// Counts the bytes as mechanism="splice". If the source ends early or fails, the client connection
    /// is aborted (a truncated body is never passed off as complete) and the exception propagates.
    /// </summary>
    Task SpliceFromSocketAsync(Socket source, long length, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="SpliceFromSocketAsync(Socket, long, CancellationToken)"/>, but every wait for upstream data or
    /// client room is bounded by <paramref name="idleTimeout"/>: on expiry the client connection is aborted and a
    /// <see cref="BodyTransferException"/> propagates (<see cref="BodyTransferFailure.IdleTimeout"/> for a stalled
    /// upstream, <see cref="BodyTransferFailure.ClientFailed"/> for a client that takes nothing).
    /// Infinite (or zero/negative) means unbounded. No default body: a wrapper that forgot it would drop the timeout.
    /// </summary>
    Task SpliceFromSocketAsync(Socket source, long length, TimeSpan idleTimeout, CancellationToken cancellationToken);

    /// <summary>
    /// Starts the response (Content-Length = <paramref name="length"/>) and sends exactly <paramref name="length"/>
    /// bytes of <paramref name="file"/> from <paramref name="offset"/> with sendfile(2). Counts mechanism="sendfile".
    /// If the file is shorter than promised, the client connection is aborted and the exception propagates.
    /// </summary>
    Task SendFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken);

    /// <summary>
    /// Starts the response (Content-Length = <paramref name="length"/>) and sends exactly <paramref name="length"/>
    /// bytes of <paramref name="directFile"/> (opened with O_DIRECT) from <paramref name="offset"/>: aligned preads
    /// into the transport's aligned buffers, reads running ahead, each buffer sent straight to the client socket
    /// (no copy into Kestrel's pipe). Any offset and length: reads start at the aligned-down offset and whole blocks
    /// are read, only the range is sent. Counts mechanism="directio". Where no hole can be taken (see
    /// <see cref="CanSendFile"/>), the bytes are copied through Kestrel's writer (still read with O_DIRECT).
    /// If the file is shorter than promised, the client connection is aborted and the exception propagates.
    /// </summary>
    Task SendDirectIoAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken);
}
