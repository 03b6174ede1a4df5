using System.Security.Cryptography;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Demo;

/// <summary>
/// Small built-in origins (enabled by the `Demo` section) so the shipped config proxies something on a fresh
/// machine: each answers "/" with its own name, "/large" with a generated file, "/healthz" with ok.
/// </summary>
internal sealed partial class DemoOrigins(RuntimeOptions options, ListenSockets sockets, ILogger<DemoOrigins> logger)
{
    private readonly List<WebApplication> _origins = [];
    private string? _largeFile;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Current.Demo is not { } demo) return;
        _largeFile = Path.Combine(Path.GetTempPath(), $"zcproxy-demo-{Environment.ProcessId}.bin");
        WriteLargeFile(_largeFile, demo.LargeFileSize);
        for (int i = 0; i < demo.Origins.Count; i++)
        {
            var name = $"demo origin {i + 1} ({demo.Origins[i]})";
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls(demo.Origins[i]);
            sockets.Register(demo.Origins[i], $"$.Demo.Origins[{i}]");
            sockets.ObserveBinds(builder.Services);
            var app = builder.Build();
            var largeFile = _largeFile;
            app.MapGet("/healthz", () => "ok\n");
            app.MapGet("/large", () => Results.File(largeFile, "application/octet-stream", enableRangeProcessing: true));
            app.MapFallback((HttpRequest r) => Results.Text($"Hello from {name}: {r.Method} {r.Path}{r.QueryString}\n"));
            await app.StartAsync(cancellationToken);
            _origins.Add(app);
            LogStarted(name, demo.LargeFileSize);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var app in _origins) await app.DisposeAsync();
        if (_largeFile is not null) File.Delete(_largeFile);
    }

    private static void WriteLargeFile(string path, long size)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read);
        var block = new byte[1 << 20];
        RandomNumberGenerator.Fill(block);
        for (long left = size; left > 0; left -= block.Length) file.Write(block, 0, (int)Math.Min(block.Length, left));
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "{Name} started (GET /large is {Size} bytes)")]
    private partial void LogStarted(string name, long size);
}
