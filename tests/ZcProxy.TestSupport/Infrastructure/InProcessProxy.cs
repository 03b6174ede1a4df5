using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Cli;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>The real proxy (same ProxyHost as the executable) running inside the test process on port 0.</summary>
public sealed class InProcessProxy : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InProcessProxy(WebApplication app) => _app = app;

    public IServiceProvider Services => _app.Services;
    public string Url { get; private set; } = "";
    public string AdminUrl { get; private set; } = "";

    /// <param name="replaceServices">Swaps services for fakes after the proxy registered its own (<c>services.Replace(...)</c>).</param>
    public static async Task<InProcessProxy> StartAsync(string mainFile, Action<IServiceCollection>? replaceServices = null)
    {
        var (config, errors) = await CheckCommand.LoadAndValidateAsync(mainFile);
        if (config is null) throw new InvalidOperationException("invalid test config:\n" + string.Join("\n", errors));
        config = WithTestHttp1(config);
        var app = await ProxyHost.StartAsync(mainFile, config, replaceServices);
        var listeners = app.Services.GetRequiredService<ListenerRegistry>();
        return new InProcessProxy(app)
        {
            Url = $"http://{listeners.ProxyEndPoints[0]}",
            AdminUrl = listeners.AdminEndPoint is { } a ? $"http://{a}" : "",
        };
    }

    /// <summary>
    /// ZCPROXY_TEST_HTTP1=kestrel (or own) runs every in-process proxy with that ZeroCopy.Http1 mode unless its config
    /// names one: the whole functional suite on Kestrel's HTTP/1.1 layer (the default is ZcProxy's own).
    /// </summary>
    private static ZcProxy.Core.Configuration.LoadedConfig WithTestHttp1(ZcProxy.Core.Configuration.LoadedConfig config)
    {
        var mode = Environment.GetEnvironmentVariable("ZCPROXY_TEST_HTTP1");
        if (string.IsNullOrEmpty(mode) || config.Options.ZeroCopy.Http1 != ZcProxy.Core.Configuration.ZeroCopyOptions.Http1Default
            || File.ReadAllText(config.Files[0]).Contains("\"Http1\"", StringComparison.Ordinal)) return config;
        return config with { Options = config.Options with { ZeroCopy = config.Options.ZeroCopy with { Http1 = mode } } };
    }

    /// <summary>A graceful stop, as SIGTERM does it (DisposeAsync stops too).</summary>
    public Task StopAsync() => _app.StopAsync();

    public T Get<T>() where T : notnull => _app.Services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
