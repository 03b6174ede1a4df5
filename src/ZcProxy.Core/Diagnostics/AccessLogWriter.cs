using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Writes access-log lines off the request path, like nginx's <c>access_log ... buffer=</c>: requests format their
/// line into a pooled buffer (<see cref="AccessLogLine"/>) and enqueue it; one background loop writes whatever has
/// queued up in one go to stdout or a file, then lets lines gather for a moment, so a busy node makes a few write(2)
/// calls a second instead of one per request. A full queue drops lines (zcproxy_access_log_dropped_total) rather
/// than slowing requests down. SIGUSR1 reopens the file (logrotate); a reload that changes Path or Format applies to
/// the next line.
/// </summary>
internal sealed partial class AccessLogWriter : BackgroundService
{
    /// <summary>How long lines may gather between two writes (nginx's access_log flush= is coarser: 1 s and more).</summary>
    internal static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(100);
    internal const int QueueLength = 65536;
    private const int SIGUSR1 = 10; // the same number on x86_64 and arm64 Linux

    private readonly Channel<Line> _lines = Channel.CreateBounded<Line>(new BoundedChannelOptions(QueueLength)
    {
        // Wait, not DropWrite: with DropWrite TryWrite reports success for a dropped line, which then goes uncounted
        // (and its pooled buffer unreturned). TryWrite never waits either way.
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = true,
    });
    private readonly RuntimeOptions _options;
    private readonly Counter _dropped;
    private readonly ILogger _logger;
    private (AccessLogOptions Options, AccessLogFormat? Format) _format;
    private PosixSignalRegistration? _sigusr1;
    private int _reopen;

    /// <summary>A formatted line in a pooled buffer; a null buffer only wakes the loop (reopen).</summary>
    private readonly record struct Line(byte[]? Buffer, int Length);

    public AccessLogWriter(RuntimeOptions options, ProxyMetrics metrics, ILogger<AccessLogWriter> logger)
    {
        _options = options;
        _logger = logger;
        _dropped = metrics.Counter("zcproxy_access_log_dropped_total", "Access-log lines dropped because the writer fell behind.");
        _format = (options.Current.AccessLog, AccessLogFormat.Parse(options.Current.AccessLog.Format, out _));
    }

    public bool Enabled => !IsOff(_options.Current.AccessLog.Path);

    /// <summary>Formats and queues the request's line (never blocks).</summary>
    public void Write(HttpContext context, TimeSpan elapsed)
    {
        var format = CurrentFormat();
        if (format is null) return;
        var (buffer, length) = AccessLogLine.Format(format, context, elapsed);
        Enqueue(buffer, length);
    }

    /// <summary>Queues a line formatted by its caller (TCP streams: one line per connection, not per request).</summary>
    public void Write(string line)
    {
        if (!Enabled) return;
        var buffer = ArrayPool<byte>.Shared.Rent(System.Text.Encoding.UTF8.GetMaxByteCount(line.Length) + 1);
        int length = System.Text.Encoding.UTF8.GetBytes(line, buffer);
        buffer[length++] = (byte)'\n';
        Enqueue(buffer, length);
    }

    private void Enqueue(byte[] buffer, int length)
    {
        if (!_lines.Writer.TryWrite(new Line(buffer, length)))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _dropped.Increment();
        }
    }

    /// <summary>Closes and reopens the log file before the next write (SIGUSR1, as nginx -s reopen).</summary>
    public void Reopen()
    {
        Interlocked.Exchange(ref _reopen, 1);
        _lines.Writer.TryWrite(default); // wake the loop even when no request comes
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Registered whatever the settings: SIGUSR1's default action would end the process.
        _sigusr1 = PosixSignalRegistration.Create((PosixSignal)SIGUSR1, context =>
        {
            context.Cancel = true;
            Reopen();
        });
        return base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _sigusr1?.Dispose();
        await base.StopAsync(cancellationToken);
    }

    private AccessLogFormat? CurrentFormat()
    {
        var options = _options.Current.AccessLog;
        var cached = _format;
        if (ReferenceEquals(cached.Options, options)) return cached.Format;
        // A reload replaced the options: compile again (check has validated the format).
        var compiled = cached.Options.Format == options.Format ? cached.Format : AccessLogFormat.Parse(options.Format, out _);
        _format = (options, compiled);
        return compiled;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Stream? output = null;
        string? openPath = null;
        try
        {
            while (await _lines.Reader.WaitToReadAsync(stoppingToken))
            {
                output = EnsureOutput(output, ref openPath);
                Drain(output);
                if (output is not null) await output.FlushAsync(stoppingToken);
                await Task.Delay(BatchInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Drain(output);
            if (output is not null)
            {
                await output.FlushAsync(CancellationToken.None);
                await output.DisposeAsync();
            }
        }
    }

    private void Drain(Stream? output)
    {
        while (_lines.Reader.TryRead(out var line))
        {
            if (line.Buffer is null) continue;
            try
            {
                if (output is null) _dropped.Increment(); // the file could not be opened
                else output.Write(line.Buffer, 0, line.Length);
            }
            catch (IOException e)
            {
                LogWriteFailed(_logger, e.Message);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(line.Buffer);
            }
        }
    }

    /// <summary>The stream for the configured path: reopened on SIGUSR1 or when a reload changed the path.</summary>
    private Stream? EnsureOutput(Stream? output, ref string? openPath)
    {
        var path = _options.Current.AccessLog.Path;
        bool reopen = Interlocked.Exchange(ref _reopen, 0) == 1;
        // Same target: keep it (or stay without one after a failed open, until SIGUSR1 or a reload retries).
        if (path == openPath && (!reopen || IsStdout(path))) return output;
        if (output is not null)
        {
            try { output.Flush(); } catch (IOException) { }
            output.Dispose();
            output = null;
        }
        openPath = path;
        if (IsOff(path)) return null;
        if (IsStdout(path)) return new BufferedStream(Console.OpenStandardOutput(), 64 * 1024);
        var full = Path.GetFullPath(path); // as StartupChecks opens it
        try
        {
            var stream = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
            if (reopen) LogReopened(_logger, full);
            return stream;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogOpenFailed(_logger, full, e.Message);
            return null;
        }
    }

    private static bool IsOff(string path) => string.Equals(path, "off", StringComparison.OrdinalIgnoreCase);

    private static bool IsStdout(string path) => string.Equals(path, "stdout", StringComparison.OrdinalIgnoreCase);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "access log reopened: {Path}")]
    private static partial void LogReopened(ILogger logger, string path);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Error, Message = "access log {Path} cannot be opened, lines are dropped until it can (SIGUSR1 retries): {Error}")]
    private static partial void LogOpenFailed(ILogger logger, string path, string error);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Error, Message = "access log write failed: {Error}")]
    private static partial void LogWriteFailed(ILogger logger, string error);
}
