using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Set for the duration of a cache fill or validation: the forwarder must not splice (or sendfile) the upstream
/// body past the cache, since the cache has to see the bytes. (tee(2) of the splice pipe into the file would
/// keep the fill zero-copy; that is a later optimisation.)
/// </summary>
internal sealed class NoSpliceFeature(IZeroCopyResponseFeature inner) : IZeroCopyResponseFeature
{
    public bool CanSplice => false;
    public bool CanSendFile => false;
    public Task SpliceFromSocketAsync(Socket source, long length, CancellationToken cancellationToken) => throw new InvalidOperationException("splicing is hidden during a cache fill");
    public Task SpliceFromSocketAsync(Socket source, long length, TimeSpan idleTimeout, CancellationToken cancellationToken) => throw new InvalidOperationException("splicing is hidden during a cache fill");
    public Task SendFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken) => throw new InvalidOperationException("sendfile is hidden during a cache fill");
    public Task SendDirectIoAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken) => throw new InvalidOperationException("direct I/O sends are hidden during a cache fill");
    public IZeroCopyResponseFeature Inner => inner;
}
