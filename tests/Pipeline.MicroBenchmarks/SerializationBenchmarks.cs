using BenchmarkDotNet.Attributes;
using Feed.V1;
using Google.Protobuf;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.MicroBenchmarks;

/// <summary>Per-record codec costs: the protobuf records every hop (de)serializes, and the edge's cursor codec.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class SerializationBenchmarks
{
    private readonly CursorCodec _cursors = new(Samples.CursorKey);
    private readonly FeedCursor _cursor = FeedCursor.At(7, 123_456_789);
    private FeedUpdate _update = null!;
    private PostEvent _postEvent = null!;
    private FeedEvent _feedEvent = null!;
    private byte[] _updateBytes = null!;
    private byte[] _postEventBytes = null!;
    private byte[] _feedEventBytes = null!;
    private string _encodedCursor = null!;

    [GlobalSetup]
    public void Setup()
    {
        _update = Samples.FeedUpdate(Samples.Recipient, Samples.Post());
        _postEvent = Samples.PostEvent();
        _encodedCursor = _cursors.Encode(_cursor, Samples.Recipient);
        _feedEvent = FeedEvents.ToFeedEvent(_update);
        _feedEvent.Cursor = _encodedCursor;
        _updateBytes = _update.ToByteArray();
        _postEventBytes = _postEvent.ToByteArray();
        _feedEventBytes = _feedEvent.ToByteArray();
    }

    [Benchmark]
    public byte[] FeedUpdate_Serialize() => _update.ToByteArray();

    [Benchmark]
    public FeedUpdate FeedUpdate_Parse() => FeedUpdate.Parser.ParseFrom(_updateBytes);

    [Benchmark]
    public byte[] PostEvent_Serialize() => _postEvent.ToByteArray();

    [Benchmark]
    public PostEvent PostEvent_Parse() => PostEvent.Parser.ParseFrom(_postEventBytes);

    [Benchmark]
    public byte[] FeedEvent_Serialize() => _feedEvent.ToByteArray();

    [Benchmark]
    public FeedEvent FeedEvent_Parse() => FeedEvent.Parser.ParseFrom(_feedEventBytes);

    [Benchmark]
    public string Cursor_Encode() => _cursors.Encode(_cursor, Samples.Recipient);

    [Benchmark]
    public CursorVerdict Cursor_TryDecode() => _cursors.TryDecode(_encodedCursor, Samples.Recipient, out _);
}
