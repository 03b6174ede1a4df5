using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Output;

/// <summary>
/// The move a body hole runs (<see cref="ZeroCopyResponse.SendHoleAsync"/>): the source's kernel move into the client
/// socket, teeing into a cache fill's file when there is one. Pooled per thread (a loop has a move per body in flight),
/// so a body moved in the kernel costs no closure and delegate, and an idle connection holds none.
/// </summary>
internal sealed class KernelMove
{
    /// <summary>Moves kept per thread: more than the bodies a loop has in flight.</summary>
    private const int KeptPerThread = 128;

    [ThreadStatic] private static Stack<KernelMove>? t_free;

    private BodySource? _source;
    private ZeroCopyConnection? _connection;
    private SplicePipe? _pipe, _teePipe;
    private IBodyFileSink? _sink;

    private KernelMove() => Run = MoveAsync;

    /// <summary>The move, for <see cref="ZeroCopyResponse.SendHoleAsync"/>: valid from <see cref="Rent"/> to <see cref="Return"/>.</summary>
    public Func<CancellationToken, ValueTask<BodyResult>> Run { get; }

    public static KernelMove Rent(BodySource source, ZeroCopyConnection connection, SplicePipe? pipe, SplicePipe? teePipe, IBodyFileSink? sink)
    {
        var move = t_free is { } free && free.TryPop(out var kept) ? kept : new KernelMove();
        move._source = source;
        move._connection = connection;
        move._pipe = pipe;
        move._teePipe = teePipe;
        move._sink = sink;
        return move;
    }

    /// <summary>The hole is over: the body's objects are let go and the move goes back to this thread's pool.</summary>
    public void Return()
    {
        _source = null;
        _connection = null;
        _pipe = _teePipe = null;
        _sink = null;
        var free = t_free ??= new Stack<KernelMove>();
        if (free.Count < KeptPerThread) free.Push(this);
    }

    private ValueTask<BodyResult> MoveAsync(CancellationToken token) => _teePipe is not null
        ? _source!.MoveTeeingAsync(_connection!, _pipe!, new FileTee(_teePipe, _sink!), token)
        : _source!.MoveAsync(_connection!, _pipe, token);
}
