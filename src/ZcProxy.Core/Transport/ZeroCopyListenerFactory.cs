using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>
/// ZcProxy's connection transport for Kestrel. Registered after Kestrel's socket transport, so Kestrel asks it
/// first (CanBind); it takes only the endpoints in <see cref="ZeroCopyListenerClaims"/> and Kestrel falls back to its
/// socket transport for the rest (TLS listeners, the admin listener, everything when ZeroCopy is off).
/// </summary>
internal sealed class ZeroCopyListenerFactory(ZeroCopyTransport transport, ZeroCopyListenerClaims claims, ILogger<ZeroCopyListener> log)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => claims.Claims(endpoint);

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => ValueTask.FromResult<IConnectionListener>(ZeroCopyListener.Bind(endpoint, transport, log));
}
