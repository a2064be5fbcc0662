// SPDX-License-Identifier: GPL-2.0
// Description: the chain link's transport.  Messages of any size arrive
// whole and in order, a bad length or malformed bytes end the stream with a
// reason, shutdown() wakes a blocked reader, and the listener joins its
// connections when it stops.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "link.h"
#include "rubble.pb.h"

using namespace fastpath::rubble;
using namespace std::chrono_literals;

namespace {

// Answers each batch with an ack whose acked_seq is the batch's last entry
// and whose error carries its size.
void echo(LinkSocket& link) {
  wire::ChainBatch b;
  while (link.read(&b)) {
    wire::ChainAck a;
    a.set_acked_seq(b.entries_size() ? b.entries().rbegin()->seq() : 0);
    a.set_error(std::to_string(b.entries_size() ? b.entries(0).file().data().size() : 0));
    if (!link.write(a)) return;
  }
}

wire::ChainBatch batch(std::uint64_t seq, std::size_t bytes) {
  wire::ChainBatch b;
  auto* e = b.add_entries();
  e->set_seq(seq);
  e->mutable_file()->set_data(std::string(bytes, static_cast<char>('a' + seq % 26)));
  return b;
}

}  // namespace

TEST(Link, MessagesArriveWholeAndInOrder) {
  LinkListener listener("127.0.0.1", echo);
  std::unique_ptr<LinkSocket> link;
  ASSERT_EQ(connect_link(listener.address(), 2s, &link), "");
  const std::vector<std::size_t> sizes{0, 1, 100, 70000, 300000, 12 << 20, 5};
  std::thread writer([&] {
    for (std::size_t i = 0; i < sizes.size(); ++i) ASSERT_TRUE(link->write(batch(i + 1, sizes[i])));
  });
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    wire::ChainAck a;
    ASSERT_TRUE(link->read(&a)) << link->error();
    EXPECT_EQ(a.acked_seq(), i + 1);
    EXPECT_EQ(a.error(), std::to_string(sizes[i]));
  }
  writer.join();
  EXPECT_GT(link->last_read_bytes(), 4u);
}

TEST(Link, BadFramesEndTheStreamWithAReason) {
  std::mutex mu;
  std::vector<std::string> errors;
  LinkListener listener("127.0.0.1", [&](LinkSocket& l) {
    wire::ChainBatch b;
    while (l.read(&b)) {
    }
    std::lock_guard lock(mu);
    errors.push_back(l.error());
  });
  const std::vector<std::string> frames{
      std::string("\xff\xff\xff\xff", 4),                  // a length far beyond the limit
      std::string("\x04\x00\x00\x00\xff\xff\xff\xff", 8),  // four bytes that are no message
      std::string("\x10\x00\x00\x00"
                  "abc",
                  7),  // the peer closes in the middle
  };
  for (const auto& f : frames) {
    const auto addr = listener.address();
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fastpath::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::send(fd.get(), f.data(), f.size(), MSG_NOSIGNAL), static_cast<ssize_t>(f.size()));
  }  // each connection closes here
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu);
      if (errors.size() == frames.size()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  listener.stop();
  std::lock_guard lock(mu);
  ASSERT_EQ(errors.size(), frames.size());
  std::string all;
  for (const auto& e : errors) all += e + "|";
  EXPECT_NE(all.find("more than the limit"), std::string::npos) << all;
  EXPECT_NE(all.find("malformed message"), std::string::npos) << all;
  EXPECT_NE(all.find("in the middle of a message"), std::string::npos) << all;
}

TEST(Link, ShutdownWakesABlockedReader) {
  std::atomic<bool> started{false};
  LinkListener listener("127.0.0.1", [&](LinkSocket& l) {
    started = true;
    wire::ChainBatch b;
    l.read(&b);  // the peer never writes: only stop() ends this
  });
  std::unique_ptr<LinkSocket> link;
  ASSERT_EQ(connect_link(listener.address(), 2s, &link), "");
  auto reader = std::async(std::launch::async, [&] {
    wire::ChainAck a;
    return link->read(&a);
  });
  EXPECT_EQ(reader.wait_for(50ms), std::future_status::timeout);
  link->shutdown();
  ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(reader.get());
  const auto t0 = std::chrono::steady_clock::now();
  listener.stop();  // joins the handler, which sees the connection end
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(Link, ConnectingNowhereFailsWithTheAddress) {
  std::string addr;
  {
    LinkListener gone("127.0.0.1", [](LinkSocket&) {});
    addr = gone.address();
  }
  std::unique_ptr<LinkSocket> link;
  const auto e = connect_link(addr, 1s, &link);
  EXPECT_NE(e.find(addr), std::string::npos) << e;
  EXPECT_FALSE(link);
  EXPECT_NE(connect_link("no-port", 1s, &link).find("malformed"), std::string::npos);
}
