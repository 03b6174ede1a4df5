using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport;

/// <summary>The lingering-close settings in force (<c>Limits.LingeringClose</c>, <c>LingeringTime</c>, <c>LingeringTimeout</c>; nginx's defaults).</summary>
internal readonly record struct LingeringSettings(string Mode, TimeSpan Time, TimeSpan Timeout)
{
    public static readonly LingeringSettings Default = From(new ClientLimits());

    public static LingeringSettings From(ClientLimits limits) => new(limits.LingeringClose, limits.LingeringTime, limits.LingeringTimeout);

    /// <summary>The settings in force now (read at each close, so a reload applies to the next one); the defaults without options.</summary>
    public static LingeringSettings Of(RuntimeOptions? options) => options is null ? Default : From(options.Current.Limits);
}

/// <summary>
/// nginx's lingering close: a client connection closed while the client may still be sending (an early 413, an
/// upstream's early answer to an upload, any answer before the request body was read) would be reset by close(2)
/// (unread bytes in the receive queue, or bytes that arrive after it, make the kernel send RST), and a reset makes the
/// client's kernel drop what it had not read yet: the response it was just sent. Instead the write side is shut down
/// (the response is followed by a FIN), and what the client still sends is dropped in the kernel (recv with MSG_TRUNC,
/// nothing copied) until it closes, sends nothing for <c>LingeringTimeout</c>, or <c>LingeringTime</c> passed; then
/// the connection is closed. It runs on the connection's event loop as any read does (waits for readiness, the loop's
/// own <see cref="LoopDeadline"/> for both bounds), so it holds no thread; an abort (server stop) ends it at once.
/// </summary>
internal sealed class LingeringClose
{
    private const int DiscardPerCall = 1 << 20;
    private readonly ZeroCopyConnection _connection;
    private readonly LoopDeadline _deadline;
    private bool _expired; // loop thread (the deadline's callback) → the lingering loop, woken through the read wait

    private LingeringClose(ZeroCopyConnection connection)
    {
        _connection = connection;
        _deadline = new LoopDeadline(static s => ((LingeringClose)s!).OnDeadline(), this);
    }

    /// <summary>
    /// Whether closing <paramref name="connection"/> now should linger, on either transport: "always", or "on" when the
    /// HTTP layer said the client may still be sending (<see cref="ILingerOnClose"/>) or bytes of it are still unread.
    /// Never after an abort (which wants its reset), a tunnel, or the client's own FIN.
    /// </summary>
    public static bool Wanted<T>(T connection, in LingeringSettings settings) where T : ILingeringCandidate
    {
        if (settings.Mode == ClientLimits.LingeringOff || connection.LingeringRuledOut) return false;
        return settings.Mode == ClientLimits.LingeringAlways || connection.LingerAsked || connection.HasUnreadBytes();
    }

    /// <summary>Shuts the write side down, then drops what the client sends until it closes or a bound is reached.</summary>
    public static async ValueTask RunAsync(ZeroCopyConnection connection, LingeringSettings settings, LingeringCounts counts)
    {
        if (!connection.TryLeaseClient(out var lease)) return;
        using (lease) Syscalls.Shutdown(lease.Fd, Syscalls.SHUT_WR);
        var lingering = new LingeringClose(connection);
        var ended = LingeringEnd.Aborted;
        try { ended = await lingering.DropUntilEndAsync(settings); }
        finally
        {
            lingering._deadline.Disarm();
            counts.Count(ended);
        }
    }

    private async ValueTask<LingeringEnd> DropUntilEndAsync(LingeringSettings settings)
    {
        var socket = _connection.ClientSocket;
        var loop = _connection.Loop;
        var bounds = LingeringBounds.Start(LoopClock.Instance, settings);
        loop.Arm(_deadline, bounds.Left());
        while (true)
        {
            if (_expired) return bounds.Reached() ?? LingeringEnd.Timeout; // the deadline fired (the loop's cached time may trail it a little)
            if (socket.Failure is not null || _connection.WasAborted) return LingeringEnd.Aborted;
            int sequence = socket.ReadSequence;
            SysResult dropped;
            if (!_connection.TryLeaseClient(out var lease)) return LingeringEnd.Aborted;
            using (lease) dropped = Syscalls.Discard(lease.Fd, DiscardPerCall);
            if (dropped.Ok && dropped.Bytes > 0)
            {
                bounds.ByteArrived();
                loop.Arm(_deadline, bounds.Left());
                continue;
            }
            if (dropped.Ok || !dropped.WouldBlock) return LingeringEnd.ClientClosed; // FIN (0), or a reset
            await socket.WaitReadableAsync(sequence);
        }
    }

    private void OnDeadline()
    {
        _expired = true;
        _connection.ClientSocket.WakeReader();
    }
}

/// <summary>
/// The request feature through which the HTTP layer (or a step of the pipeline) says that the client may still be sending
/// when its connection closes (a 413 answered from the head): the close then lingers unless <c>LingeringClose</c> is "off".
/// Both transports' connections provide it: Kestrel's socket transport's as a connection feature
/// (<see cref="SocketLingeringClose"/>); <see cref="ZeroCopyConnection"/> implements it and is found as itself, not
/// registered again: one more entry in each connection's feature collection cost ~220 B per idle connection (managed
/// heap, bench/idleconns.py, 10,000 connections, 2 runs each).
/// </summary>
internal interface ILingerOnClose
{
    void LingerOnClose();
}

/// <summary>What <see cref="LingeringClose.Wanted"/> asks a closing connection.</summary>
internal interface ILingeringCandidate
{
    /// <summary>Aborted, a tunnel, or the client's FIN came: nothing to linger for.</summary>
    bool LingeringRuledOut { get; }
    /// <summary>The HTTP layer said the client may still be sending (<see cref="ILingerOnClose"/>).</summary>
    bool LingerAsked { get; }
    /// <summary>Request bytes nobody read: buffered by the transport, or still in the socket.</summary>
    bool HasUnreadBytes();
}

/// <summary>How a lingering close ended.</summary>
internal enum LingeringEnd
{
    /// <summary>The client closed (FIN) or reset: nothing more to wait for.</summary>
    ClientClosed,
    /// <summary>The client sent nothing for LingeringTimeout.</summary>
    Timeout,
    /// <summary>LingeringTime passed while the client kept sending.</summary>
    Time,
    /// <summary>The connection was aborted meanwhile (server stop).</summary>
    Aborted,
}

/// <summary><c>zcproxy_lingering_closes_total{ended}</c>: lingering closes by how they ended.</summary>
internal sealed class LingeringCounts
{
    private readonly Counter[] _byEnd;

    public LingeringCounts(ProxyMetrics metrics)
    {
        var family = metrics.Counters("zcproxy_lingering_closes_total",
            "Client connections closed after reading and dropping what the client still sent (nginx lingering_close), by how that ended.", "ended");
        _byEnd = [family.WithLabels("client_closed"), family.WithLabels("timeout"), family.WithLabels("time"), family.WithLabels("aborted")];
    }

    public void Count(LingeringEnd ended) => _byEnd[(int)ended].Add(1);

    public long Get(LingeringEnd ended) => _byEnd[(int)ended].Value;
}
