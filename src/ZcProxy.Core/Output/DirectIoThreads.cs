using Microsoft.Win32.SafeHandles;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// Where the blocking file calls of bulk bodies run: the O_DIRECT reads of cold hits (<see cref="DirectReadAhead"/>) and
/// the writes of O_DIRECT fills (Caching/DirectFillWriter), as nginx's <c>aio threads</c> pool runs both. A 1 MiB pread
/// or pwrite blocks its thread for the disk's latency (1–4 ms per MiB here); on the .NET thread pool (one worker per core)
/// those calls held the workers that the continuations and sends needed (docs/direct-io.md, "Cold hits against dd" and
/// "Fill writes"). These threads only make the call; a completed call's continuation runs on the thread that made it
/// until it waits (the hit's send of the chunk; a fill's hop back to its loop). Started at the first call; the calls run
/// in the order asked, and <see cref="Count"/> bounds the blocking calls in flight of the whole process, reads and
/// writes together.
/// </summary>
internal sealed class DirectIoThreads
{
    /// <summary>As many as one cold hit keeps reads in flight (<see cref="DirectReadAhead.ReadsInFlight"/>): measured, docs/direct-io.md.</summary>
    public const int Count = 4;

    /// <summary>The process's threads.</summary>
    public static DirectIoThreads Shared { get; } = new(Count, "zc-direct-io");

    // A plain queue under its lock, idle threads parked in Monitor.Wait: BlockingCollection's SemaphoreSlim spun and
    // yielded before it parked, 15-20 context switches per 1 MiB write of a fill (docs/direct-io.md, "Fill writes").
    private readonly Queue<Call> _calls = new();
    private int _idle;
    private readonly int _count;
    private readonly string _name;
    private int _started;
    private int _pending;

    /// <param name="count">threads</param>
    /// <param name="name">their name's prefix (the thread's comm, as in /proc/PID/task/TID/comm)</param>
    /// <param name="startAtFirstCall">false: the calls wait in the queue until <see cref="Start"/> (tests)</param>
    internal DirectIoThreads(int count, string name, bool startAtFirstCall = true)
    {
        _count = count;
        _name = name;
        if (!startAtFirstCall) _started = 1;
    }

    /// <summary>Calls asked for and not finished yet (queued or running).</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>pread into the whole of <paramref name="buffer"/> at <paramref name="at"/>.</summary>
    public Task<SysResult> ReadAsync(AlignedBuffer buffer, SafeFileHandle file, long at) =>
        Ask(new Call(Write: false, buffer, 0, buffer.Length, file, at, new TaskCompletionSource<SysResult>()));

    /// <summary>pwrite of all of <paramref name="buffer"/>'s bytes [<paramref name="start"/>, +<paramref name="count"/>) at <paramref name="at"/>.</summary>
    public Task<SysResult> WriteAsync(AlignedBuffer buffer, int start, int count, SafeFileHandle file, long at) =>
        Ask(new Call(Write: true, buffer, start, count, file, at, new TaskCompletionSource<SysResult>()));

    /// <summary>Starts the threads of an instance made with startAtFirstCall false.</summary>
    internal void Start() => StartThreads();

    private Task<SysResult> Ask(Call call)
    {
        if (Volatile.Read(ref _started) == 0 && Interlocked.Exchange(ref _started, 1) == 0) StartThreads();
        Interlocked.Increment(ref _pending);
        lock (_calls)
        {
            _calls.Enqueue(call);
            if (_idle > 0) Monitor.Pulse(_calls);
        }
        return call.Done.Task;
    }

    private void StartThreads()
    {
        for (int i = 0; i < _count; i++) new Thread(Run) { IsBackground = true, Name = $"{_name}-{i}" }.Start();
    }

    private void Run()
    {
        while (true)
        {
            Call call;
            lock (_calls)
            {
                while (!_calls.TryDequeue(out call))
                {
                    _idle++;
                    Monitor.Wait(_calls);
                    _idle--;
                }
            }
            SysResult result;
            try { result = call.Write ? call.Buffer.WriteAt(call.File, call.Start, call.Count, call.At) : call.Buffer.ReadAt(call.File, call.At); }
            catch (Exception e) // the handle was closed under it (ObjectDisposedException): the caller reports it
            {
                Interlocked.Decrement(ref _pending);
                call.Done.SetException(e);
                continue;
            }
            Interlocked.Decrement(ref _pending);
            call.Done.SetResult(result);
        }
    }

    private readonly record struct Call(bool Write, AlignedBuffer Buffer, int Start, int Count, SafeFileHandle File, long At,
        TaskCompletionSource<SysResult> Done);
}
