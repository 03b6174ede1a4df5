using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// Wraps the server WebApplication registered (Kestrel) to learn the host's <see cref="IHttpApplication{TContext}"/>:
/// ZcProxy's own HTTP/1.1 layer calls the very application Kestrel calls (hosting diagnostics, middleware, routing,
/// YARP), so a request behaves the same whichever layer parsed it. Everything else is Kestrel's.
/// </summary>
internal sealed class CapturingServer(IServer inner, Http1ApplicationHolder holder) : IServer
{
    public IFeatureCollection Features => inner.Features;

    public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken) where TContext : notnull
    {
        holder.Application = new Http1Application<TContext>(application);
        return inner.StartAsync(application, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);

    public void Dispose() => inner.Dispose();

    /// <summary>Replaces the registered <see cref="IServer"/> by this wrapper around it (call after the web host registered its server).</summary>
    public static void Register(IServiceCollection services, Http1ApplicationHolder holder)
    {
        var registered = services.LastOrDefault(d => d.ServiceType == typeof(IServer))
            ?? throw new InvalidOperationException("no IServer is registered: the own HTTP/1.1 layer needs Kestrel's");
        services.Remove(registered);
        services.AddSingleton(holder);
        services.AddSingleton<IServer>(sp => new CapturingServer(Create(sp, registered), holder));
    }

    private static IServer Create(IServiceProvider services, ServiceDescriptor registered)
        => (IServer)(registered.ImplementationInstance
            ?? registered.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, registered.ImplementationType!));
}

/// <summary>The host's application once the server started (null before): what <see cref="Http1Connection"/>s call.</summary>
internal sealed class Http1ApplicationHolder
{
    private Http1Application? _application;
    private long _handedOver;

    /// <summary>Connections handed to Kestrel at a head this layer does not take (tests, diagnostics).</summary>
    public long HandedOver => Volatile.Read(ref _handedOver);

    internal void CountHandOver() => Interlocked.Increment(ref _handedOver);

    public Http1Application? Application
    {
        get => Volatile.Read(ref _application);
        set => Volatile.Write(ref _application, value);
    }
}
