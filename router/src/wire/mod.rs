//! Client wire formats: request validation and the error shapes each format
//! expects.

pub mod openai;
