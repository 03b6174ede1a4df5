using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>
/// One listening socket of ZcProxy's transport for Kestrel: a <see cref="LoopListener"/> on the first loop, each
/// accepted connection registered with the next loop as a <see cref="ZeroCopyConnection"/>.
/// </summary>
internal sealed class ZeroCopyListener : IConnectionListener
{
    private readonly LoopListener _listener;
    private readonly ZeroCopyTransport _transport;

    private ZeroCopyListener(LoopListener listener, EndPoint endPoint, ZeroCopyTransport transport)
    {
        _listener = listener;
        EndPoint = endPoint;
        _transport = transport;
    }

    public EndPoint EndPoint { get; }

    public static ZeroCopyListener Bind(EndPoint endPoint, ZeroCopyTransport transport, ILogger log)
    {
        var loop = transport.Loops.All[0];
        switch (endPoint)
        {
            case FileHandleEndPoint handle:
            {
                var adopted = LoopListener.Adopt((int)handle.FileHandle, loop, log);
                return new ZeroCopyListener(adopted, adopted.LocalEndPoint, transport);
            }
            case IPEndPoint ip:
            {
                var bound = LoopListener.Bind(new IPEndPoint(ip.Address, ip.Port), loop, log);
                return new ZeroCopyListener(bound, new ZeroCopyEndPoint(bound.LocalEndPoint.Address, bound.LocalEndPoint.Port), transport);
            }
            default: throw new NotSupportedException($"ZcProxy's transport cannot listen on {endPoint}");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        if (await _listener.AcceptAsync(cancellationToken) is not { } accepted) return null;
        try
        {
            return new ZeroCopyConnection(accepted.Handle, _transport.Loops.Next(), _transport, accepted.Local, accepted.Peer);
        }
        catch
        {
            accepted.Handle.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting (a pending AcceptAsync returns null) and closes the listening socket.</summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => _listener.UnbindAsync();

    public ValueTask DisposeAsync() => _listener.UnbindAsync();
}
