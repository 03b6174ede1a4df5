using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting;

/// <summary>
/// Remembers which configuration entry asked for each listen endpoint, and which bind failed, so that a start that
/// fails on a busy or forbidden port is reported like nginx does, in one line:
/// "FILE: $.Listen[0].Url: bind() to 127.0.0.1:80 failed (13: Permission denied)". It sees the binds by wrapping the
/// connection-listener factories Kestrel binds through (its socket transport, ZcProxy's own); the sockets stay theirs.
/// </summary>
internal sealed class ListenSockets(string mainFile)
{
    private readonly ConcurrentDictionary<IPEndPoint, string> _jsonPaths = new();
    private readonly ConcurrentDictionary<SocketException, string> _failures = new(ReferenceEqualityComparer.Instance);

    /// <summary>Remembers that the entry at <paramref name="jsonPath"/> listens on <paramref name="url"/>'s endpoint(s).</summary>
    public void Register(string? url, string jsonPath)
    {
        if (!ListenUrl.TryParse(url, out var parsed, out _)) return;
        IPAddress[] addresses = parsed!.IsLocalhost ? [IPAddress.Loopback, IPAddress.IPv6Loopback]
            : parsed.Address is { } a && (a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any)) ? [IPAddress.Any, IPAddress.IPv6Any]
            : [parsed.Address ?? IPAddress.Loopback];
        foreach (var address in addresses) _jsonPaths.TryAdd(new IPEndPoint(address, parsed.Port), jsonPath);
    }

    /// <summary>Wraps every connection-listener factory registered so far, in place (Kestrel's order of asking them stays).</summary>
    public void ObserveBinds(IServiceCollection services)
    {
        for (int i = 0; i < services.Count; i++)
        {
            var descriptor = services[i];
            if (descriptor.ServiceType != typeof(IConnectionListenerFactory) || descriptor.IsKeyedService) continue;
            services[i] = ServiceDescriptor.Describe(typeof(IConnectionListenerFactory),
                sp => new ObservedListenerFactory(Create(sp, descriptor), this), descriptor.Lifetime);
        }
    }

    /// <summary>The one line for a failed bind somewhere in <paramref name="failure"/>'s exception chain, if there is one.</summary>
    public string? Describe(Exception failure) => failure switch
    {
        SocketException socket when _failures.TryGetValue(socket, out var line) => line,
        AggregateException aggregate => aggregate.InnerExceptions.Select(Describe).FirstOrDefault(line => line is not null),
        { InnerException: { } inner } => Describe(inner),
        _ => null,
    };

    private void Failed(EndPoint endPoint, Exception failure)
    {
        for (Exception? e = failure; e is not null; e = e.InnerException)
        {
            if (e is not SocketException socket) continue;
            var where = endPoint is IPEndPoint ip && _jsonPaths.TryGetValue(new IPEndPoint(ip.Address, ip.Port), out var jsonPath) ? $"{mainFile}: {jsonPath}: " : "";
            _failures[socket] = $"{where}bind() to {endPoint} failed ({socket.NativeErrorCode}: {socket.Message})";
            return;
        }
    }

    private static IConnectionListenerFactory Create(IServiceProvider services, ServiceDescriptor descriptor) =>
        (IConnectionListenerFactory)(descriptor.ImplementationInstance
            ?? descriptor.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, descriptor.ImplementationType!));

    /// <summary>A factory as it was, but a failed bind is noted first. Kestrel still decides what a failure means.</summary>
    private sealed class ObservedListenerFactory(IConnectionListenerFactory inner, ListenSockets sockets)
        : IConnectionListenerFactory, IConnectionListenerFactorySelector
    {
        public bool CanBind(EndPoint endpoint) => inner is not IConnectionListenerFactorySelector selector || selector.CanBind(endpoint);

        public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.BindAsync(endpoint, cancellationToken);
            }
            catch (Exception e)
            {
                sockets.Failed(endpoint, e);
                throw;
            }
        }
    }
}
