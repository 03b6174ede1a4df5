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
    public int Capacity { get; private set; }
    /// <summary>True while the pipe is grown past its pool's size (a relay's long transfer): the pool counts it against its growth budget.</summary>
    internal bool Grown { get; set; }
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

    /// <summary>
    /// F_SETPIPE_SZ on the pipe in use: false, and the pipe as it was, when the kernel refuses (EPERM: above
    /// fs.pipe-max-size or the user's pipe quota; EBUSY: it holds more than the smaller size; ENOMEM).
    /// </summary>
    public bool TryResize(int bytes)
    {
        try
        {
            Capacity = Syscalls.SetPipeSize(_write, bytes);
            return true;
        }
        catch (ErrnoException e) when (e.Code is Errno.EPERM or Errno.EBUSY or Errno.ENOMEM) { return false; }
    }

    /// <summary>The pipe's size as the kernel reports it now (F_GETPIPE_SZ), for tests.</summary>
    internal int KernelCapacity() => Syscalls.GetPipeSize(_write);

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
    }
}
