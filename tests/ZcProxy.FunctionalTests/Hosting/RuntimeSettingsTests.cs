using System.Text.Json;

namespace ZcProxy.Tests.Hosting;

/// <summary>
/// The runtime settings shipped in zcproxy.runtimeconfig.json (docs/transport.md, "Runtime settings"): they travel with
/// the program (dotnet run, the bench, the .deb), not in a benchmark's environment.
/// </summary>
public sealed class RuntimeSettingsTests
{
    private static JsonElement ConfigProperties()
    {
        var path = Path.ChangeExtension(ProxyProcess.ExecutablePath, ".runtimeconfig.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").Clone();
    }

    [Fact]
    public void ShippedRuntimeConfig_WorkstationGc_AndThreadPoolWorkersThatDoNotSpin()
    {
        var properties = ConfigProperties();
        Assert.False(properties.GetProperty("System.GC.Server").GetBoolean());
        Assert.Equal("0", properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").ToString());
    }

    [Fact]
    public async Task RunningProxy_HasNoServerGcThreads()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""");
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        await proxy.WaitForListenersAsync();
        var threads = Directory.GetDirectories($"/proc/{proxy.Pid}/task")
            .Select(t => { try { return File.ReadAllText(Path.Combine(t, "comm")).Trim(); } catch (IOException) { return ""; } })
            .ToList();
        Assert.Contains(threads, t => t.StartsWith("zcproxy-loop", StringComparison.Ordinal)); // read the right process
        Assert.DoesNotContain(threads, t => t.StartsWith(".NET Server GC", StringComparison.Ordinal));
    }
}
