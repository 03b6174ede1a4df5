using System.Buffers;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// A request head being written: a pooled byte array that grows by doubling, filled with Latin-1 text (one byte per
/// char, see <see cref="HeaderEncoding"/>). Field names and values are checked as <see cref="RequestHeadWriter"/>
/// checks them: no transform or client may split the request. Give the array back with <see cref="Release"/>; a
/// zero-copy connection keeps one and <see cref="Restart"/>s it for each request's head (<see cref="Transport.ZeroCopyResponse.RequestHead"/>).
/// </summary>
internal sealed class HeadBuffer
{
    private byte[] _buffer;
    private int _length;
    private bool _pooled;

    public HeadBuffer(int capacity = DefaultCapacity)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(capacity);
        _pooled = true;
    }

    private const int DefaultCapacity = 1024;

    /// <summary>The same object, empty, with a pooled array again (after <see cref="Release"/> gave the last one back).</summary>
    public HeadBuffer Restart()
    {
        Release();
        _buffer = ArrayPool<byte>.Shared.Rent(DefaultCapacity);
        _pooled = true;
        return this;
    }

    /// <summary>A finished head (from <see cref="RequestHeadWriter"/>): its bytes, not pooled.</summary>
    public HeadBuffer(byte[] written)
    {
        _buffer = written;
        _length = written.Length;
    }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        _length += bytes.Length;
    }

    /// <summary>Text already known to be safe (ASCII the caller checked, or its own constants).</summary>
    public void AppendLatin1(ReadOnlySpan<char> text)
    {
        var target = Reserve(text.Length);
        for (int i = 0; i < text.Length; i++) target[i] = (byte)text[i];
        _length += text.Length;
    }

    /// <summary>"name: value" CRLF; throws like <see cref="RequestHeadWriter"/> on a name or value that could split the head.</summary>
    public void AppendField(string name, ReadOnlySpan<char> value)
    {
        foreach (var c in name)
            if (c <= ' ' || c == ':' || c >= 0x7F) throw new InvalidOperationException($"invalid request header name '{name}'");
        foreach (var c in value)
            if (c is '\r' or '\n' or '\0' || c > 0xFF) throw new InvalidOperationException($"invalid character in request header '{name}'");
        AppendLatin1(name);
        Append(": "u8);
        AppendLatin1(value);
        Append("\r\n"u8);
    }

    /// <summary>Room for <paramref name="count"/> more bytes.</summary>
    public Span<byte> Reserve(int count)
    {
        if (_length + count > _buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            if (_pooled) ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
            _pooled = true;
        }
        return _buffer.AsSpan(_length, count);
    }

    public void Advance(int count) => _length += count;

    public void Release()
    {
        if (_pooled) ArrayPool<byte>.Shared.Return(_buffer);
        _pooled = false;
        _buffer = [];
        _length = 0;
    }
}
