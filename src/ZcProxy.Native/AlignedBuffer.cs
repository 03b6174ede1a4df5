using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// Native memory aligned for O_DIRECT (buffer address, and callers keep offsets and lengths, multiples of
/// <see cref="Alignment"/>). Freed by the SafeHandle, so a buffer still used by a pread in flight is not freed under it.
/// </summary>
internal sealed unsafe class AlignedBuffer : SafeHandle
{
    public const int Alignment = 4096;

    public AlignedBuffer(int length) : base(IntPtr.Zero, ownsHandle: true)
    {
        if (length <= 0 || length % Alignment != 0) throw new ArgumentOutOfRangeException(nameof(length), "must be a positive multiple of 4096");
        SetHandle((nint)NativeMemory.AlignedAlloc((nuint)length, Alignment));
        Length = length;
    }

    public int Length { get; }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The memory; only valid while this buffer is not disposed.</summary>
    public Span<byte> Span => new((void*)handle, Length);

    /// <summary>The same memory as a <see cref="Memory{T}"/>, for APIs that take one (stream writes); same validity.</summary>
    public Memory<byte> Memory => (_manager ??= new Manager(this)).Memory;

    private Manager? _manager;

    /// <summary>pread into the whole buffer at a file offset (both must be aligned for an O_DIRECT fd).</summary>
    public SysResult ReadAt(SafeHandle file, long offset)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            return Syscalls.Pread(file, Span, offset);
        }
        finally { if (added) DangerousRelease(); }
    }

    /// <summary>pwrite of bytes [<paramref name="start"/>, +<paramref name="length"/>) at a file offset, all of them (aligned, for an O_DIRECT fd).</summary>
    public SysResult WriteAt(SafeHandle file, int start, int length, long offset)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            return Syscalls.PwriteAll(file, Span.Slice(start, length), offset);
        }
        finally { if (added) DangerousRelease(); }
    }

    /// <summary>Hands out the native memory; it is never moved, so pinning is a no-op.</summary>
    private sealed class Manager(AlignedBuffer buffer) : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => buffer.Span;
        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new((byte*)buffer.handle + elementIndex);
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }

    protected override bool ReleaseHandle()
    {
        NativeMemory.AlignedFree((void*)handle);
        return true;
    }
}
