using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The zero-copy side door of <see cref="ResponseHeadGate"/>: splice and sendfile write straight to the client
/// socket, past IHttpResponseBodyFeature, so a held-back response sent that way would reach the client (and start
/// the response, ruling out the retry). While the gate discards, splicing and sendfile are refused, so the
/// forwarder copies the body into the gate, which drops it; a response the gate lets through is spliced as usual.
/// The gate's decision is made once per try, on the status, which the forwarder has set before it asks.
/// </summary>
internal sealed class GatedZeroCopyResponse(IZeroCopyResponseFeature inner, ResponseHeadGate gate) : IZeroCopyResponseFeature
{
    public IZeroCopyResponseFeature Inner => inner;

    public bool CanSplice => !gate.IsDiscarding() && inner.CanSplice;
    public bool CanSendFile => !gate.IsDiscarding() && inner.CanSendFile;

    public Task SpliceFromSocketAsync(Socket source, long length, CancellationToken cancellationToken)
        => gate.IsDiscarding() ? throw new InvalidOperationException("a held-back response cannot be spliced") : inner.SpliceFromSocketAsync(source, length, cancellationToken);

    public Task SpliceFromSocketAsync(Socket source, long length, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => gate.IsDiscarding() ? throw new InvalidOperationException("a held-back response cannot be spliced") : inner.SpliceFromSocketAsync(source, length, idleTimeout, cancellationToken);

    public Task SendFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken)
        => gate.IsDiscarding() ? throw new InvalidOperationException("a held-back response cannot be sent with sendfile") : inner.SendFileAsync(file, offset, length, cancellationToken);

    public Task SendDirectIoAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken)
        => gate.IsDiscarding() ? throw new InvalidOperationException("a held-back response cannot be sent from an O_DIRECT file") : inner.SendDirectIoAsync(directFile, offset, length, cancellationToken);
}
