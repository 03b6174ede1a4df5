using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>A failed libc call: the call's name, the errno and strerror's text.</summary>
internal sealed class ErrnoException : IOException
{
    public ErrnoException(string call, int errno)
        : base($"{call} failed: {Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})", errno)
    {
        Call = call;
        Errno = errno;
    }

    public string Call { get; }
    public int Errno { get; }
    public Errno Code => (Errno)Errno;

    public static ErrnoException FromLastError(string call) => new(call, Marshal.GetLastPInvokeError());

    private static string Name(int errno) => Enum.IsDefined(typeof(Errno), errno) ? ((Errno)errno).ToString() : $"errno {errno}";
}
