using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace ZcProxy.Core.Transport.Loops;

#pragma warning disable CA1822 // Start and SetStateMachine are instance members of the builder pattern the compiler calls

/// <summary>
/// The async method builder of the proxied request's hot frames (the forward, the response-head read, the transport's
/// waiting reads): <see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>'s design (a frame that suspends lives in a
/// box that is reused once its ValueTask has been read) with a deeper pool. The runtime's pool keeps one box per thread
/// and one per core, so a loop with a dozen requests in flight rents a new box for most of them; this one keeps up to
/// <see cref="FrameBox{TResult}.KeptPerThread"/> boxes per thread and frame type. A frame that completes without
/// suspending uses no box. The usual ValueTask rule holds (await it once).
/// </summary>
internal struct FramePoolBuilder<TResult>
{
    private FrameBox<TResult>? _box; // set at the first suspension, copied into the box with the state machine
    private TResult? _result;
    private Exception? _exception;

    public static FramePoolBuilder<TResult> Create() => default;

    public readonly ValueTask<TResult> Task => _box is { } box ? new ValueTask<TResult>(box, box.Version)
        : _exception is { } e ? ValueTask.FromException<TResult>(e) : new ValueTask<TResult>(_result!);

    /// <summary><see cref="Task"/> without its result, for <see cref="FramePoolBuilder"/> (its box is an IValueTaskSource too).</summary>
    internal readonly ValueTask ResultlessTask => _box is { } box ? new ValueTask(box, box.Version)
        : _exception is { } e ? ValueTask.FromException(e) : default;

    public readonly void Start<TStateMachine>(ref TStateMachine stateMachine) where TStateMachine : IAsyncStateMachine
        => default(AsyncValueTaskMethodBuilder<TResult>).Start(ref stateMachine); // runs to the first suspension, restoring the caller's context

    public readonly void SetStateMachine(IAsyncStateMachine stateMachine) { }

    public void SetResult(TResult result)
    {
        if (_box is { } box) box.SetResult(result);
        else _result = result;
    }

    public void SetException(Exception exception)
    {
        if (_box is { } box) box.SetException(exception);
        else _exception = exception;
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine
        => awaiter.OnCompleted(Box(ref stateMachine).MoveNextAction);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine
        => awaiter.UnsafeOnCompleted(Box(ref stateMachine).MoveNextAction);

    private FrameBox<TResult>.Of<TStateMachine> Box<TStateMachine>(ref TStateMachine stateMachine) where TStateMachine : IAsyncStateMachine
        => FrameBox<TResult>.Of<TStateMachine>.For(ref _box, ref stateMachine);
}

/// <summary><see cref="FramePoolBuilder{TResult}"/> for methods returning a ValueTask: the same builder with no result.</summary>
internal struct FramePoolBuilder
{
    private FramePoolBuilder<FrameBox.None> _frame;

    public static FramePoolBuilder Create() => default;

    public readonly ValueTask Task => _frame.ResultlessTask;

    public readonly void Start<TStateMachine>(ref TStateMachine stateMachine) where TStateMachine : IAsyncStateMachine
        => _frame.Start(ref stateMachine);

    public readonly void SetStateMachine(IAsyncStateMachine stateMachine) { }

    public void SetResult() => _frame.SetResult(default);

    public void SetException(Exception exception) => _frame.SetException(exception);

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine
        => _frame.AwaitOnCompleted(ref awaiter, ref stateMachine);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine
        => _frame.AwaitUnsafeOnCompleted(ref awaiter, ref stateMachine);
}

/// <summary>Result type of the frames of <see cref="FramePoolBuilder"/>.</summary>
internal static class FrameBox
{
    public readonly struct None;
}

/// <summary>
/// A suspended frame's box: the state machine, the execution context it resumes in, and the ValueTask source its caller
/// awaits. Back to its thread's pool once that caller has read the result.
/// </summary>
internal abstract class FrameBox<TResult> : IValueTaskSource<TResult>, IValueTaskSource
{
    /// <summary>Boxes kept per thread and frame type: more than the requests a loop has in flight.</summary>
    internal const int KeptPerThread = 128;

    private ManualResetValueTaskSourceCore<TResult> _core; // continuations run inline, as the runtime's pooled boxes do

    public short Version => _core.Version;

    public void SetResult(TResult result) => _core.SetResult(result);

    public void SetException(Exception exception) => _core.SetException(exception);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);

    public TResult GetResult(short token)
    {
        var result = _core.GetResult(token); // a failed frame's box is dropped, as the runtime's are
        _core.Reset();
        Return();
        return result;
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    private protected abstract void Return();

    public sealed class Of<TStateMachine> : FrameBox<TResult> where TStateMachine : IAsyncStateMachine
    {
        [ThreadStatic] private static Stack<Of<TStateMachine>>? t_free;
        private static readonly ContextCallback RunInContext = static s => ((Of<TStateMachine>)s!).StateMachine.MoveNext();

        public TStateMachine StateMachine = default!;
        private ExecutionContext? _context;

        private Of() => MoveNextAction = MoveNext;

        public Action MoveNextAction { get; }

        /// <summary>The frame's box, rented at its first suspension (the state machine is copied into it then); captures the context to resume in.</summary>
        internal static Of<TStateMachine> For(ref FrameBox<TResult>? builderBox, ref TStateMachine stateMachine)
        {
            if (builderBox is not Of<TStateMachine> box)
            {
                box = t_free is { Count: > 0 } free ? free.Pop() : new Of<TStateMachine>();
                builderBox = box; // before the copy: the box's own builder must know its box
                box.StateMachine = stateMachine;
            }
            box._context = ExecutionContext.Capture();
            return box;
        }

        private void MoveNext()
        {
            if (_context is { } context) ExecutionContext.Run(context, RunInContext, this);
            else StateMachine.MoveNext();
        }

        private protected override void Return()
        {
            StateMachine = default!;
            _context = null;
            var free = t_free ??= new Stack<Of<TStateMachine>>();
            if (free.Count < KeptPerThread) free.Push(this);
        }
    }
}
