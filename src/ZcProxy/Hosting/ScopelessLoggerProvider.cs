using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Hosting;

/// <summary>
/// A logger provider seen by the logger factory without its external-scope support, so <c>BeginScope</c> costs nothing.
/// ZcProxy's console lines never show scopes (IncludeScopes is off), yet with a provider that supports external scopes
/// the factory pushes every scope onto an AsyncLocal anyway: Kestrel opens one per connection for its whole life, and
/// the execution context that carries it stayed reachable from every idle keep-alive connection (~200 B each with the
/// scope object and Kestrel's ConnectionLogScope).
/// </summary>
internal sealed class ScopelessLoggerProvider(ILoggerProvider inner) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => inner.CreateLogger(categoryName);

    /// <summary>Nothing: the container that made the inner provider disposes it.</summary>
    public void Dispose() { }

    /// <summary>Replaces the registration of <typeparamref name="TProvider"/> as a logger provider by this wrapper around it.</summary>
    public static void Wrap<TProvider>(IServiceCollection services) where TProvider : class, ILoggerProvider
    {
        var registration = services.Single(d => d.ServiceType == typeof(ILoggerProvider) && d.ImplementationType == typeof(TProvider));
        services.Remove(registration);
        services.AddSingleton<TProvider>();
        services.AddSingleton<ILoggerProvider>(sp => new ScopelessLoggerProvider(sp.GetRequiredService<TProvider>()));
    }
}
