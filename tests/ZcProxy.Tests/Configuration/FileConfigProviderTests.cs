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
