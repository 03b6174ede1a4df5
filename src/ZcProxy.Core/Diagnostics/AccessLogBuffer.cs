namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The access log's memory buffer, as nginx's <c>access_log ... buffer=</c>: request threads copy their formatted line
/// into one large buffer under a short lock (no object per line, nothing handed across threads but bytes); the writer
/// takes the whole buffer, puts the spare one in its place, and writes what it took with one write(2). When the writer
/// has fallen behind and the buffer is full, a line is refused (the caller counts it as dropped), never waited for.
/// The two buffers are allocated with the first line, so a proxy that logs nothing holds none.
/// </summary>
internal sealed class AccessLogBuffer(int capacity)
{
    private readonly object _lock = new();
    private byte[]? _filling;
    private int _length;
    private byte[]? _spare;
    private bool _spareOut; // the writer holds the spare buffer (between Take and Return)

    public int Capacity => capacity;

    /// <summary>What appending a line did.</summary>
    public enum Appended
    {
        /// <summary>Appended to a buffer that already held lines.</summary>
        Added,
        /// <summary>Appended as the buffer's first line: the writer has something to write.</summary>
        First,
        /// <summary>Appended, and the buffer is now more than half full: the writer should not wait for its interval.</summary>
        PassedHalf,
        /// <summary>Not appended: the buffer is full (the writer fell behind).</summary>
        Full,
    }

    public Appended TryAppend(ReadOnlySpan<byte> line)
    {
        lock (_lock)
        {
            var buffer = _filling ??= GC.AllocateUninitializedArray<byte>(capacity);
            int before = _length;
            if (line.Length > buffer.Length - before) return Appended.Full;
            line.CopyTo(buffer.AsSpan(before));
            _length = before + line.Length;
            if (before == 0) return Appended.First;
            int half = buffer.Length / 2;
            return before < half && _length >= half ? Appended.PassedHalf : Appended.Added;
        }
    }

    /// <summary>The writer's side: takes every line appended so far (empty when none); give the buffer back with <see cref="Return"/>.</summary>
    public ArraySegment<byte> Take()
    {
        lock (_lock)
        {
            if (_length == 0 || _filling is null || _spareOut) return ArraySegment<byte>.Empty;
            var full = new ArraySegment<byte>(_filling, 0, _length);
            _filling = _spare ?? GC.AllocateUninitializedArray<byte>(capacity);
            _spare = null;
            _length = 0;
            _spareOut = true;
            return full;
        }
    }

    /// <summary>The writer is done with what <see cref="Take"/> gave it: the buffer becomes the spare one.</summary>
    public void Return(ArraySegment<byte> taken)
    {
        if (taken.Array is null || taken.Count == 0) return;
        lock (_lock)
        {
            _spare = taken.Array;
            _spareOut = false;
        }
    }
}
