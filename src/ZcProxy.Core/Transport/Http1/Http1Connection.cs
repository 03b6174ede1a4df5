using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>Kestrel's limits this layer keeps (read once per listener).</summary>
internal sealed record Http1Limits(Http1HeadLimits Head, TimeSpan KeepAliveTimeout, TimeSpan RequestHeadersTimeout, long? MaxRequestBodySize);

/// <summary>
/// ZcProxy's HTTP/1.1 connection: reads request heads from the connection's pull-based input, serves the plain ones
/// through the host's application (one pooled <see cref="Http1Exchange"/> per request), and hands the connection to
/// Kestrel at the first head it does not accept, with those bytes unconsumed, so Kestrel reads the same bytes and
/// serves the rest of the connection. While idle it holds this object, its deadline and the waiting read: no request
/// object, header collection or buffer. Timeouts are one <see cref="LoopDeadline"/> per connection (keep-alive, then
/// request-head), no timer per request.
/// </summary>
internal sealed partial class Http1Connection : ICloseRequestListener
{
    private readonly ConnectionContext _context;
    private readonly ConnectionDelegate _kestrel;
    private readonly Http1Application _application;
    private readonly Http1ApplicationHolder _holder;
    private readonly ILogger _logger;
    private readonly LoopDeadline _deadline;
    private int _timedOut, _closeRequested;
    private bool _idle; // waiting for a head: only then may a close request cancel the read (never a body's)
    private ConnectionFeatureMisses _featureMisses;

    private Http1Connection(ConnectionContext context, ZeroCopyConnection connection, ConnectionDelegate kestrel, Http1ApplicationHolder holder,
        Http1Application application, Http1Limits limits, ILogger logger)
    {
        _holder = holder;
        _context = context;
        Connection = connection;
        _kestrel = kestrel;
        _application = application;
        Limits = limits;
        _logger = logger;
        _deadline = new LoopDeadline(static s => ((Http1Connection)s!).OnDeadline(), this);
    }

    public ZeroCopyConnection Connection { get; }
    public Http1Limits Limits { get; }
    /// <summary>Requests served so far (the trace identifier's number).</summary>
    public long RequestCount { get; private set; }
    /// <summary>The server asked this connection to close (graceful stop): the current response says so and ends it.</summary>
    public bool CloseRequested => Volatile.Read(ref _closeRequested) != 0;

    /// <summary>A connection-level feature as a request asks for it; the absent ones are remembered (see <see cref="ConnectionFeatureMisses"/>).</summary>
    internal object? ConnectionFeature(Type key) => _featureMisses.Find(Connection.Features, key);

    public static Task ServeAsync(ConnectionContext context, ZeroCopyConnection connection, ConnectionDelegate kestrel, Http1ApplicationHolder holder,
        Http1Application application, Http1Limits limits, ILogger logger)
        => new Http1Connection(context, connection, kestrel, holder, application, limits, logger).RunAsync();

    private async Task RunAsync()
    {
        var input = Connection.Input;
        var closing = _context.Features.Get<IConnectionLifetimeNotificationFeature>();
        // Told by a call where the feature can (the listener's grace): no registration on a source kept while idle.
        var notifier = closing as ICloseRequestNotifier;
        notifier?.Listen(this);
        using var closeRegistration = closing is null || notifier is not null ? default
            : closing.ConnectionClosedRequested.UnsafeRegister(static s => ((Http1Connection)s!).OnCloseRequested(), this);
        try
        {
            while (!CloseRequested)
            {
                Connection.Loop.Arm(_deadline, Limits.KeepAliveTimeout);
                _idle = true;
                bool headStarted = false;
                Http1Exchange? exchange = null;
                Http1RequestHead head;
                ReadOnlySequence<byte> buffer;
                while (true)
                {
                    var read = await input.ReadAsync();
                    buffer = read.Buffer;
                    if (read.IsCanceled)
                    {
                        input.AdvanceTo(buffer.Start, buffer.End);
                        if (Volatile.Read(ref _timedOut) != 0 && headStarted) await AnswerHeadTimeoutAsync();
                        if (Volatile.Read(ref _timedOut) != 0 || CloseRequested) return;
                        continue;
                    }
                    if (buffer.IsEmpty && read.IsCompleted) return; // the client closed between requests
                    var status = Http1HeadStatus.HandOver;
                    head = default;
                    if (buffer.IsSingleSegment)
                    {
                        exchange = _application.Rent();
                        status = Http1HeadParser.Parse(buffer.FirstSpan, Limits.Head, exchange.ParsedHeaders, out head, exchange.Strings);
                    }
                    if (status == Http1HeadStatus.Complete) break;
                    if (exchange is not null)
                    {
                        _application.Return(exchange);
                        exchange = null;
                    }
                    if (status == Http1HeadStatus.HandOver || read.IsCompleted)
                    {
                        await HandOverAsync(buffer);
                        return;
                    }
                    input.AdvanceTo(buffer.Start, buffer.End); // a prefix of a head: wait for the rest
                    if (!headStarted)
                    {
                        headStarted = true;
                        Connection.Loop.Arm(_deadline, Limits.RequestHeadersTimeout); // re-armed: from the first byte of the head
                    }
                }
                _idle = false;
                _deadline.Disarm();
                input.AdvanceTo(buffer.GetPosition(head.Length));
                RequestCount++;
                exchange!.Begin(this, head);
                bool keepAlive;
                try
                {
                    // The request runs in this connection's frame (kept across requests), in Kestrel's order: the app,
                    // the response's end, OnCompleted, DisposeContext.
                    _application.CreateContext(exchange);
                    Exception? failure = null;
                    try
                    {
                        await _application.ProcessRequestAsync(exchange);
                    }
                    catch (Exception e)
                    {
                        failure = e;
                    }
                    await exchange.EndAsync(failure);
                    _application.DisposeContext(exchange, failure);
                    keepAlive = exchange.KeepAlive && !Connection.IsAborted && (exchange.Body.Remaining == 0 || await DrainBodyAsync(exchange));
                    if (!keepAlive && exchange.Body.Remaining > 0) Connection.LingerOnClose(); // the client may still be sending it
                }
                finally
                {
                    _application.Return(exchange);
                }
                if (!keepAlive) return;
            }
        }
        catch (Exception e) when (e is ConnectionAbortedException or ConnectionResetException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The client went away or the connection was aborted: nothing to answer.
        }
        catch (Exception e)
        {
            LogConnectionError(_logger, Connection.ConnectionId, e);
            Connection.Abort(new ConnectionAbortedException("the HTTP/1.1 layer failed", e));
        }
        finally
        {
            notifier?.Listen(null);
            _deadline.Disarm();
        }
    }

    /// <summary>Kestrel takes over: the head's bytes stay unconsumed (it parses them itself) and it serves the rest of the connection.</summary>
    private Task HandOverAsync(ReadOnlySequence<byte> buffer)
    {
        _deadline.Disarm();
        _holder.CountHandOver();
        Connection.Input.AdvanceTo(buffer.Start, buffer.Start);
        return _kestrel(_context);
    }

    /// <summary>Body bytes the app did not read (some remain) are read and dropped, so the next request starts at its head (at most 1 MiB; else the connection ends).</summary>
    private async ValueTask<bool> DrainBodyAsync(Http1Exchange exchange)
    {
        var body = exchange.Body;
        if (body.Remaining > 1024 * 1024) return false;
        Connection.Loop.Arm(_deadline, Limits.KeepAliveTimeout);
        try
        {
            while (body.Remaining > 0)
            {
                var read = await body.ReadAsync();
                if (read.IsCanceled) return false;
                body.AdvanceTo(read.Buffer.End);
            }
            return true;
        }
        catch (Exception e) when (e is Microsoft.AspNetCore.Http.BadHttpRequestException or ConnectionAbortedException or ConnectionResetException or IOException)
        {
            return false;
        }
        finally
        {
            _deadline.Disarm();
        }
    }

    /// <summary>Kestrel's answer to a head that does not arrive in time: 408, then the connection closes.</summary>
    private async ValueTask AnswerHeadTimeoutAsync()
    {
        var output = Connection.Output;
        var line = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n"u8;
        var span = output.GetSpan(line.Length + Http1Date.Length + 2);
        line.CopyTo(span);
        int at = line.Length + Http1Date.Write(span[line.Length..]);
        span[at++] = (byte)'\r';
        span[at++] = (byte)'\n';
        output.Advance(at);
        await output.FlushAsync();
    }

    private void OnDeadline()
    {
        Volatile.Write(ref _timedOut, 1);
        Connection.Input.CancelPendingRead();
    }

    void ICloseRequestListener.OnCloseRequested() => OnCloseRequested();

    private void OnCloseRequested()
    {
        Volatile.Write(ref _closeRequested, 1);
        // On the loop, where the connection's code runs: an idle connection closes at once, a busy one after its response.
        Connection.Loop.Post(static s =>
        {
            var connection = (Http1Connection)s!;
            if (connection._idle) connection.Connection.Input.CancelPendingRead();
        }, this);
    }

    internal void LogApplicationError(Exception e) => LogApplicationFailure(_logger, Connection.ConnectionId, e);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Error, Message = "Connection id \"{ConnectionId}\": an unhandled exception was thrown by the application.")]
    private static partial void LogApplicationFailure(ILogger logger, string connectionId, Exception exception);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Connection id \"{ConnectionId}\": the HTTP/1.1 layer failed")]
    private static partial void LogConnectionError(ILogger logger, string connectionId, Exception exception);
}
