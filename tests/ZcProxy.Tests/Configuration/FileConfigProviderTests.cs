using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Configuration;

public class FileConfigProviderTests
{
    /// <summary>A check with a defect: it throws instead of reporting.</summary>
    private sealed class ThrowingCheck : IConfigCheck
    {
        public bool Armed { get; set; }

        public IEnumerable<ConfigError> Check(LoadedConfig config) => Armed ? throw new InvalidOperationException("boom") : [];
    }

    /// <summary>Keeps every warning logged, as its formatted text.</summary>
    private sealed class WarningLog : ILoggerProvider, ILogger
    {
        public List<string> Warnings { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel == LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) lock (Warnings) Warnings.Add(formatter(state, exception));
        }

        public void Dispose() { }
    }

    [Fact]
    public async Task Reload_ChangingTheHttp1Layer_SaysARestartIsNeeded()
    {
        using var dir = new ConfigDirectory();
        const string proxyJson = """{ "Routes": {}, "Clusters": {} }""";
        dir.WriteMain(proxyJson, """ "ZeroCopy": { "Http1": "own" } """);
        var log = new WarningLog();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(log));
        var (initial, errors) = await ProxyServices.LoadAndValidateAsync(dir.MainFile);
        Assert.Empty(errors);
        services.AddZcProxyServices(initial!.Options);
        services.UseFileConfig(dir.MainFile, initial);
        await using var provider = services.BuildServiceProvider();
        var config = provider.GetRequiredService<FileConfigProvider>();

        Assert.True((await config.ReloadAsync("unchanged")).Applied);
        Assert.Empty(log.Warnings);

        dir.WriteMain(proxyJson, """ "ZeroCopy": { "Http1": "kestrel" } """);
        Assert.True((await config.ReloadAsync("Http1 changed")).Applied);

        // The listeners were built with the own layer: only a restart hands HTTP/1.1 to Kestrel (ProxyHost).
        Assert.Equal("'ZeroCopy.Http1' changed to kestrel: this takes effect only after a restart; the running process keeps the old value",
            Assert.Single(log.Warnings));
    }

    [Fact]
    public async Task Reload_WhenReadingOrValidatingThrows_IsRejected_AndStillEndsTheAttempt()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""");
        var check = new ThrowingCheck();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfigCheck>(check);
        var (initial, errors) = await ProxyServices.LoadAndValidateAsync(dir.MainFile);
        Assert.Empty(errors);
        services.AddZcProxyServices(initial!.Options);
        services.UseFileConfig(dir.MainFile, initial);
        await using var provider = services.BuildServiceProvider();
        var config = provider.GetRequiredService<FileConfigProvider>();
        var lifecycle = provider.GetRequiredService<ConfigLifecycle>();
        var ended = new List<ConfigReloadOutcome>();
        lifecycle.Reloaded += ended.Add;

        check.Armed = true;
        var outcome = await config.ReloadAsync("test");

        Assert.False(outcome.Applied);
        Assert.Equal([outcome], ended); // what systemd's READY=1 hangs on
        Assert.Contains("internal error while reading the configuration (InvalidOperationException: boom)", Assert.Single(outcome.Errors));
        Assert.Same(initial, config.Current);
    }
}
