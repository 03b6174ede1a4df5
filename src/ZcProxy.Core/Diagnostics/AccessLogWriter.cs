using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Writes access-log lines off the request path: requests enqueue, one background loop writes in batches
/// to stdout or a file. A full queue drops lines (counted) rather than slowing requests down.
/// </summary>
internal sealed class AccessLogWriter : BackgroundService
{
    private readonly Channel<string> _lines = Channel.CreateBounded<string>(new BoundedChannelOptions(65536)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });
    private readonly string _path;
    private readonly Counter _dropped;

    public AccessLogWriter(RuntimeOptions options, ProxyMetrics metrics)
    {
        _path = options.Current.AccessLog.Path;
        _dropped = metrics.Counter("zcproxy_access_log_dropped_total", "Access-log lines dropped because the writer fell behind.");
    }

    public bool Enabled => !string.Equals(_path, "off", StringComparison.OrdinalIgnoreCase);

    public void Write(string line)
    {
        if (!_lines.Writer.TryWrite(line)) _dropped.Increment();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!Enabled) return;
        await using var output = string.Equals(_path, "stdout", StringComparison.OrdinalIgnoreCase)
            ? new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false }
            : new StreamWriter(new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)) { AutoFlush = false };
        try
        {
            while (await _lines.Reader.WaitToReadAsync(stoppingToken))
            {
                while (_lines.Reader.TryRead(out var line)) await output.WriteLineAsync(line);
                await output.FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
            while (_lines.Reader.TryRead(out var line)) await output.WriteLineAsync(line);
            await output.FlushAsync(CancellationToken.None);
        }
    }
}
