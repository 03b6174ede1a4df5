namespace ZcProxy.Tests.Infrastructure;

/// <summary>A temporary config tree: main file plus routes.d/, removed on dispose.</summary>
public sealed class ConfigDirectory : IDisposable
{
    public ConfigDirectory()
    {
        Root = Path.Combine(Path.GetTempPath(), "zcproxy-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path.Combine(Root, "routes.d"));
    }

    public string Root { get; }
    public string MainFile => Path.Combine(Root, "zcproxy.json");

    /// <summary>A main file with proxy and admin listeners on port 0 and routes.d/*.json included.</summary>
    public string WriteMain(string reverseProxyJson, string extraSections = "")
    {
        var text = $$"""
            {
              "Listen": [ { "Url": "http://127.0.0.1:0" } ],
              "Admin": { "Url": "http://127.0.0.1:0" },
              "Include": [ "routes.d/*.json" ],
              {{(extraSections.Length > 0 ? extraSections + "," : "")}}
              "ReverseProxy": {{reverseProxyJson}}
            }
            """;
        WriteAtomically(MainFile, text);
        return MainFile;
    }

    /// <summary>Writes like an editor does: to a temp file, then renamed into place.</summary>
    public string WriteAtomically(string path, string text)
    {
        var full = Path.IsPathRooted(path) ? path : Path.Combine(Root, path);
        var temp = full + ".tmp~";
        File.WriteAllText(temp, text);
        File.Move(temp, full, overwrite: true);
        return full;
    }

    public static string Cluster(string id, params (string Name, string Url)[] destinations) => Cluster(id, null, destinations);

    public static string Cluster(string id, string? policy, params (string Name, string Url)[] destinations)
    {
        var dests = string.Join(",\n", destinations.Select(d => $"\"{d.Name}\": {{ \"Address\": \"{d.Url}\" }}"));
        var lb = policy is null ? "" : $"\"LoadBalancingPolicy\": \"{policy}\",";
        return $"\"{id}\": {{ {lb} \"Destinations\": {{ {dests} }} }}";
    }

    /// <summary>What `check` finds in the main file once it has loaded (a load error fails the test: it is not what is being checked).</summary>
    internal async Task<List<ZcProxy.Core.Configuration.ConfigError>> ValidateAsync()
    {
        var errors = new List<ZcProxy.Core.Configuration.ConfigError>();
        var config = ZcProxy.Core.Configuration.ConfigFileLoader.Load(MainFile, errors);
        Assert.Empty(errors);
        return await ZcProxy.Hosting.ProxyServices.ValidateAsync(config!);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
