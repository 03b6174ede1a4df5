using ZcProxy.Native;

namespace ZcProxy.Core.Transport;

/// <summary>
/// A kernel pipe between an upstream socket and a client socket (splice needs a pipe on one side).
/// <see cref="Buffered"/> tracks the bytes inside it: a pipe that may hold bytes must never be reused.
/// </summary>
internal sealed class SplicePipe : IDisposable
{
    private readonly FileDescriptor _read;
    private readonly FileDescriptor _write;

    private SplicePipe(FileDescriptor read, FileDescriptor write, int capacity)
    {
        _read = read;
        _write = write;
        Capacity = capacity;
    }

    public int ReadFd => _read.Fd;
    public int WriteFd => _write.Fd;
    /// <summary>Bytes the pipe holds (as the kernel granted it with F_SETPIPE_SZ).</summary>
    public int Capacity { get; }
    /// <summary>True once closed (after a failed transfer, or when the pool had no room for it).</summary>
    public bool IsClosed => _read.IsClosed;
    /// <summary>Bytes spliced in and not yet spliced out.</summary>
    public long Buffered { get; set; }

    public static SplicePipe Create(int requestedCapacity)
    {
        var (read, write) = Syscalls.CreatePipe();
        int capacity;
        try { capacity = Syscalls.SetPipeSize(write, requestedCapacity); }
        catch (ErrnoException e) when (e.Code is Errno.EPERM or Errno.EBUSY)
        {
            // Above /proc/sys/fs/pipe-max-size or the user's pipe quota: the pipe keeps the size it was created with
            // (the pool checks it: over the quota that is 2 pages).
            capacity = Syscalls.GetPipeSize(write);
        }
        return new SplicePipe(read, write, capacity);
    }

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
    }
}
