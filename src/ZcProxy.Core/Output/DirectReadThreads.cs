using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// The threads that run O_DIRECT reads (nginx's <c>aio threads</c>): a pread of a cold range blocks its thread for the
/// disk's latency (1–4 ms per MiB here), which on the .NET thread pool (one worker per core) held the workers the
/// read-ahead's own continuations and sends needed, so a hit had one read or none in flight up to 55 % of the time
/// although two were asked for (docs/direct-io.md, "Cold hits against dd"). These threads only read; a completed read's
/// continuation (the send of the chunk) runs on the thread that read it until it waits, as it did on the pool.
/// Started at the first read; <see cref="Count"/> bounds the O_DIRECT reads in flight of the whole process.
/// </summary>
internal static class DirectReadThreads
{
    /// <summary>As many as one hit keeps in flight (<see cref="DirectReadAhead.ReadsInFlight"/>): measured, docs/direct-io.md.</summary>
    public const int Count = 4;

    private static readonly BlockingCollection<Read> Queue = new(new ConcurrentQueue<Read>());
    private static int _started;

    /// <summary>pread into the whole of <paramref name="buffer"/> at <paramref name="at"/>, on one of these threads.</summary>
    public static Task<SysResult> ReadAsync(AlignedBuffer buffer, SafeFileHandle file, long at)
    {
        if (Volatile.Read(ref _started) == 0 && Interlocked.Exchange(ref _started, 1) == 0)
            for (int i = 0; i < Count; i++) new Thread(Run) { IsBackground = true, Name = $"zc-direct-read-{i}" }.Start();
        var read = new Read(buffer, file, at, new TaskCompletionSource<SysResult>());
        Queue.Add(read);
        return read.Done.Task;
    }

    private static void Run()
    {
        foreach (var read in Queue.GetConsumingEnumerable())
        {
            SysResult result;
            try { result = read.Buffer.ReadAt(read.File, read.At); }
            catch (Exception e) // the handle was closed under it (ObjectDisposedException): the reader reports it
            {
                read.Done.SetException(e);
                continue;
            }
            read.Done.SetResult(result);
        }
    }

    private readonly record struct Read(AlignedBuffer Buffer, SafeFileHandle File, long At, TaskCompletionSource<SysResult> Done);
}
