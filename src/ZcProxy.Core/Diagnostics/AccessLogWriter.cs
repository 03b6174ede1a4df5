using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Writes access-log lines off the request path, like nginx's <c>access_log ... buffer= flush=</c>: a request formats its
/// line into its thread's scratch buffer (<see cref="AccessLogLine"/>) and copies the bytes into the shared
/// <see cref="AccessLogBuffer"/>; one background loop writes whatever has gathered in one write(2) to stdout or a file,
/// then lets lines gather for <see cref="BatchInterval"/> (less when the buffer passes half), so a busy node makes a few
/// write calls a second and no object per line. A full buffer drops lines (zcproxy_access_log_dropped_total) rather
/// than slowing requests down. SIGUSR1 reopens the file (logrotate); a reload that changes Path or Format applies to
/// the next line.
/// </summary>
internal sealed partial class AccessLogWriter : BackgroundService
{
    /// <summary>How long lines may gather between two writes (nginx's access_log flush= is coarser: 1 s and more).</summary>
    internal static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Bytes that may wait for the writer (twice: one buffer fills while the other is written). 1 MiB is about 4000
    /// lines of the main format: 100 ms of 40,000 requests/s; the writer starts early at half.
    /// </summary>
    internal const int BufferSize = 1 << 20;
    private const int SIGUSR1 = 10; // the same number on x86_64 and arm64 Linux

    private readonly AccessLogBuffer _buffer = new(BufferSize);
    /// <summary>Wakes the loop: the first line of a batch, a buffer past half, a reopen. Holds at most one signal.</summary>
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly RuntimeOptions _options;
    private readonly Counter _dropped;
    private readonly ILogger _logger;
    private (AccessLogOptions Options, AccessLogFormat? Format) _format;
    private PosixSignalRegistration? _sigusr1;
    private int _reopen;

    public AccessLogWriter(RuntimeOptions options, ProxyMetrics metrics, ILogger<AccessLogWriter> logger)
    {
        _options = options;
        _logger = logger;
        _dropped = metrics.Counter("zcproxy_access_log_dropped_total", "Access-log lines dropped because the writer fell behind.");
        _format = (options.Current.AccessLog, AccessLogFormat.Parse(options.Current.AccessLog.Format, out _));
    }

    public bool Enabled => !IsOff(_options.Current.AccessLog.Path);

    /// <summary>Formats and buffers the request's line (never blocks on the writer).</summary>
    public void Write(HttpContext context, TimeSpan elapsed)
    {
        var format = CurrentFormat();
        if (format is null) return;
        Append(AccessLogLine.Format(format, context, elapsed));
    }

    /// <summary>Buffers a line formatted by its caller (TCP streams: one line per connection, not per request).</summary>
    public void Write(string line)
    {
        if (!Enabled) return;
        var buffer = ArrayPool<byte>.Shared.Rent(System.Text.Encoding.UTF8.GetMaxByteCount(line.Length) + 1);
        int length = System.Text.Encoding.UTF8.GetBytes(line, buffer);
        buffer[length++] = (byte)'\n';
        Append(buffer.AsSpan(0, length));
        ArrayPool<byte>.Shared.Return(buffer);
    }

    private void Append(ReadOnlySpan<byte> line)
    {
        switch (_buffer.TryAppend(line))
        {
            case AccessLogBuffer.Appended.Full:
                _dropped.Increment();
                break;
            case AccessLogBuffer.Appended.First or AccessLogBuffer.Appended.PassedHalf:
                _wake.Writer.TryWrite(true);
                break;
        }
    }

    /// <summary>Closes and reopens the log file before the next write (SIGUSR1, as nginx -s reopen).</summary>
    public void Reopen()
    {
        Interlocked.Exchange(ref _reopen, 1);
        _wake.Writer.TryWrite(true); // wake the loop even when no request comes
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
            // Each turn: a batch's first line (or a reopen) wakes the loop; the batch gathers for BatchInterval, or
            // less when it passes half the buffer (that signal ends the wait); then it is written in one go.
            while (await _wake.Reader.WaitToReadAsync(stoppingToken))
            {
                _wake.Reader.TryRead(out _);
                var passedHalf = _wake.Reader.WaitToReadAsync(stoppingToken).AsTask();
                await Task.WhenAny(passedHalf, Task.Delay(BatchInterval, stoppingToken));
                _wake.Reader.TryRead(out _);
                output = EnsureOutput(output, ref openPath);
                WriteTaken(output, _buffer.Take());
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            var rest = _buffer.Take();
            if (rest.Count > 0) WriteTaken(output = EnsureOutput(output, ref openPath), rest);
            output?.Dispose();
        }
    }

    /// <summary>One write of everything gathered; the lines count as dropped when there is no file to write to.</summary>
    private void WriteTaken(Stream? output, ArraySegment<byte> taken)
    {
        if (taken.Count == 0) return;
        try
        {
            if (output is null) _dropped.Add(CountLines(taken)); // the file could not be opened
            else output.Write(taken);
        }
        catch (IOException e)
        {
            LogWriteFailed(_logger, e.Message);
        }
        finally
        {
            _buffer.Return(taken);
        }
    }

    private static int CountLines(ReadOnlySpan<byte> bytes) => bytes.Count((byte)'\n');

    /// <summary>The stream for the configured path: reopened on SIGUSR1 or when a reload changed the path.</summary>
    private Stream? EnsureOutput(Stream? output, ref string? openPath)
    {
        var path = _options.Current.AccessLog.Path;
        bool reopen = Interlocked.Exchange(ref _reopen, 0) == 1;
        // Same target: keep it (or stay without one after a failed open, until SIGUSR1 or a reload retries).
        if (path == openPath && (!reopen || IsStdout(path))) return output;
        if (output is not null)
        {
            output.Dispose();
            output = null;
        }
        openPath = path;
        if (IsOff(path)) return null;
        if (IsStdout(path)) return Console.OpenStandardOutput(); // batches are written whole: no stream buffer in between
        var full = Path.GetFullPath(path); // as StartupChecks opens it
        try
        {
            var stream = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
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
