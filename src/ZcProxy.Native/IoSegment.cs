using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// One buffer of a gathered write, by address: for memory that is pinned for its whole life (arrays on the
/// pinned object heap), so a send needs no per-call pinning. Own type rather than Tmds.LibC's iovec: an immutable
/// value for callers, with the same layout as struct iovec (checked by NativeLayoutTests).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct IoSegment
{
    public IoSegment(nint address, int length)
    {
        Address = address;
        Length = (nuint)length;
    }

    public nint Address { get; }
    public nuint Length { get; }
}
